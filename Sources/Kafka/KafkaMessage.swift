/// A header as Kafka carries it: a name and raw bytes.
public struct KafkaHeader: Sendable, Equatable {
    public var name: String
    public var value: [UInt8]
    public init(_ name: String, _ value: [UInt8]) {
        self.name = name
        self.value = value
    }
    public init(_ name: String, _ value: String) { self.init(name, Array(value.utf8)) }
    public var stringValue: String { String(decoding: value, as: UTF8.self) }
}

/// A message to produce.
public struct KafkaRecord: Sendable {
    public var topic: String
    public var key: [UInt8]?
    public var value: [UInt8]
    public var headers: [KafkaHeader]
    /// nil: the partitioner picks one from the key.
    public var partition: Int32?
    public init(topic: String, key: [UInt8]?, value: [UInt8], headers: [KafkaHeader] = [], partition: Int32? = nil) {
        self.topic = topic
        self.key = key
        self.value = value
        self.headers = headers
        self.partition = partition
    }
    public init(topic: String, key: String, value: String, headers: [KafkaHeader] = []) {
        self.init(topic: topic, key: Array(key.utf8), value: Array(value.utf8), headers: headers)
    }
}

/// A consumed message, copied out of librdkafka so it outlives the poll.
public struct KafkaMessage: Sendable {
    public var topic: String
    public var partition: Int32
    public var offset: Int64
    public var key: [UInt8]?
    public var value: [UInt8]
    public var headers: [KafkaHeader]
    /// Milliseconds since the epoch, as the producer or broker stamped it; nil when absent.
    public var timestampMs: Int64?

    public var topicPartition: TopicPartition { TopicPartition(topic: topic, partition: partition) }
    public var keyString: String? { key.map { String(decoding: $0, as: UTF8.self) } }
    public func header(_ name: String) -> KafkaHeader? { headers.last { $0.name == name } }

    public init(
        topic: String, partition: Int32, offset: Int64, key: [UInt8]?, value: [UInt8],
        headers: [KafkaHeader] = [], timestampMs: Int64? = nil
    ) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.key = key
        self.value = value
        self.headers = headers
        self.timestampMs = timestampMs
    }
}

/// Where the broker put a produced message.
public struct DeliveryReport: Sendable {
    public var topic: String
    public var partition: Int32
    public var offset: Int64
}
