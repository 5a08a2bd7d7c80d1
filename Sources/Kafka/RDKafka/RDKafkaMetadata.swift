import CRdKafka

/// Metadata round trips: whether a broker answers, and which partitions a topic has.
extension RDKafkaClient {
    /// The bounded way to learn that the brokers are unreachable.
    func checkConnection(brokers: String, timeoutMs: Int32) throws {
        var metadata: UnsafePointer<rd_kafka_metadata>?
        let err = rd_kafka_metadata(handle, 0, nil, &metadata, timeoutMs)
        if let metadata { rd_kafka_metadata_destroy(metadata) }
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw KafkaError(
                code: err, operation: "connect",
                message: "cannot reach Kafka at \(brokers) within \(timeoutMs) ms: \(String(cString: rd_kafka_err2str(err)))"
                    + (context.lastError.withLock { $0 }.map { " (\($0.split(whereSeparator: \.isNewline).joined(separator: " ").prefix(500)))" }
                        ?? ""))
        }
    }

    /// The partitions of `topic`; none when the broker does not know it.
    func partitions(of topic: String, timeoutMs: Int32) throws -> [TopicPartition] {
        guard let rkt = rd_kafka_topic_new(handle, topic, nil) else { return [] }
        defer { rd_kafka_topic_destroy(rkt) }
        var metadata: UnsafePointer<rd_kafka_metadata>?
        let err = rd_kafka_metadata(handle, 0, rkt, &metadata, max(timeoutMs, 1))
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata else {
            throw KafkaError(code: err, operation: "metadata", message: "no metadata for \(topic): \(String(cString: rd_kafka_err2str(err)))")
        }
        defer { rd_kafka_metadata_destroy(metadata) }
        let described = UnsafeBufferPointer(start: metadata.pointee.topics, count: Int(metadata.pointee.topic_cnt))
        guard let entry = described.first(where: { String(cString: $0.topic) == topic }),
            entry.err != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART
        else { return [] }
        guard entry.err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(code: entry.err, operation: "metadata") }
        return (0..<Int(entry.partition_cnt)).map { TopicPartition(topic: topic, partition: entry.partitions[$0].id) }
    }
}
