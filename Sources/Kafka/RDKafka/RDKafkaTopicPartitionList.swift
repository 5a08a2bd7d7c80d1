import CRdKafka

/// Special offsets, as librdkafka takes them in a partition list.
enum RDKafkaOffset {
    /// A partition's first message.
    static var beginning: Int64 { Int64(RD_KAFKA_OFFSET_BEGINNING) }
    /// No offset: where a list names partitions only.
    static var invalid: Int64 { Int64(RD_KAFKA_OFFSET_INVALID) }
}

extension Array where Element == (TopicPartition, Int64) {
    /// A C list that lives only for the closure: the pointer never escapes.
    func withPartitionList<R>(_ body: (UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) throws -> R) rethrows -> R {
        let list = rd_kafka_topic_partition_list_new(Int32(count))!
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for (tp, offset) in self {
            rd_kafka_topic_partition_list_add(list, tp.topic, tp.partition).pointee.offset = offset
        }
        return try body(list)
    }
}

extension Dictionary where Key == TopicPartition, Value == Int64 {
    /// `withPartitionList` of these partitions at these offsets.
    func withPartitionList<R>(_ body: (UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) throws -> R) rethrows -> R {
        try map { ($0.key, $0.value) }.withPartitionList(body)
    }
}

extension UnsafeMutablePointer where Pointee == rd_kafka_topic_partition_list_t {
    var elements: [(TopicPartition, Int64, rd_kafka_resp_err_t)] {
        (0..<Int(pointee.cnt)).map { i in
            let e = pointee.elems[i]
            return (TopicPartition(topic: String(cString: e.topic), partition: e.partition), e.offset, e.err)
        }
    }

    /// The list's first per-partition error, if any.
    var firstError: rd_kafka_resp_err_t? {
        elements.first { $0.2 != RD_KAFKA_RESP_ERR_NO_ERROR }?.2
    }
}
