import CRdKafka

/// One event from `rd_kafka_consumer_poll`, copied into Swift values: the C message is
/// destroyed before it is returned.
enum RDKafkaPollEvent {
    case message(KafkaMessage)
    case error(RDKafkaPollError)
}

/// An error event of a poll: most are retried inside librdkafka and are news, not failures.
struct RDKafkaPollError {
    /// librdkafka's code (`RDKafkaErrorCode`).
    var code: Int32
    /// The partition it concerns; nil for the consumer as a whole.
    var partition: TopicPartition?
    /// The event's own text, or the code's when it has none.
    var text: String

    /// The partition whose end a fetch reached (with `enable.partition.eof`), if that is what this is.
    var endOfPartition: TopicPartition? { code == RD_KAFKA_RESP_ERR__PARTITION_EOF.rawValue ? partition : nil }
}

/// Topic names by librdkafka topic handle, for one poll loop: a name is built from C once per
/// topic, not once per message.
struct TopicNames {
    private var names: [OpaquePointer: String] = [:]

    mutating func name(of rkt: OpaquePointer) -> String {
        if let cached = names[rkt] { return cached }
        let name = String(cString: rd_kafka_topic_name(rkt))
        names[rkt] = name
        return name
    }
}

extension RDKafkaClient {
    /// Waits up to `timeoutMs` for a message or an error (serving callbacks, rebalances
    /// included, meanwhile); nil when none came. With `content` false a message's key, value
    /// and headers are not copied: for a caller that only needs where it is.
    func consumerPoll(timeoutMs: Int32, topicNames: inout TopicNames, content: Bool = true) -> RDKafkaPollEvent? {
        guard let raw = rd_kafka_consumer_poll(handle, timeoutMs) else { return nil }
        defer { rd_kafka_message_destroy(raw) }
        let m = raw.pointee
        if m.err == RD_KAFKA_RESP_ERR_NO_ERROR, let rkt = m.rkt {
            return .message(
                KafkaMessage(
                    topic: topicNames.name(of: rkt), partition: m.partition, offset: m.offset,
                    key: content ? m.key.map { Array(UnsafeRawBufferPointer(start: $0, count: m.key_len)) } : nil,
                    value: content ? m.payload.map { Array(UnsafeRawBufferPointer(start: $0, count: m.len)) } ?? [] : [],
                    headers: content ? Self.headers(of: raw) : [], timestampMs: Self.timestamp(of: raw)))
        }
        // An error event's payload, when there is one, is its text.
        let text =
            m.err != RD_KAFKA_RESP_ERR_NO_ERROR ? m.payload.map { String(cString: $0.assumingMemoryBound(to: CChar.self)) } : nil
        return .error(
            RDKafkaPollError(
                code: m.err.rawValue, partition: m.rkt.map { TopicPartition(topic: topicNames.name(of: $0), partition: m.partition) },
                text: text ?? String(cString: rd_kafka_err2str(m.err))))
    }

    private static func headers(of raw: UnsafeMutablePointer<rd_kafka_message_t>) -> [KafkaHeader] {
        var hdrs: OpaquePointer?
        guard rd_kafka_message_headers(raw, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR, let hdrs else { return [] }
        var result: [KafkaHeader] = []
        var index = 0
        var name: UnsafePointer<CChar>?
        var value: UnsafeRawPointer?
        var size = 0
        while rd_kafka_header_get_all(hdrs, index, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR {
            result.append(KafkaHeader(String(cString: name!), value.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) } ?? []))
            index += 1
        }
        return result
    }

    private static func timestamp(of raw: UnsafeMutablePointer<rd_kafka_message_t>) -> Int64? {
        var type = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
        let ts = rd_kafka_message_timestamp(raw, &type)
        return type == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? nil : ts
    }
}
