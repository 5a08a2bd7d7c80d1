import CRdKafka

/// A consumer handle's calls: subscription and assignment, commits, pause and resume, seek, close.
/// Each blocks the calling thread while librdkafka works: callers run them off the cooperative pool.
extension RDKafkaClient {
    /// Sends errors, logs and rebalances to the queue `rd_kafka_consumer_poll` serves, rather
    /// than to a main queue no one polls.
    func redirectPollsToConsumer() { rd_kafka_poll_set_consumer(handle) }

    /// Joins the group for these topics.
    func subscribe(_ topics: [String]) throws {
        let err = topics.map { (TopicPartition(topic: $0, partition: RD_KAFKA_PARTITION_UA), RDKafkaOffset.invalid) }
            .withPartitionList { rd_kafka_subscribe(handle, $0) }
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(code: err, operation: "subscribe") }
    }

    /// Fetches these partitions from these offsets, outside any group; replaces any assignment.
    func assign(_ starts: [TopicPartition: Int64]) throws {
        let err = starts.withPartitionList { rd_kafka_assign(handle, $0) }
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(code: err, operation: "assign") }
    }

    func unassign() { rd_kafka_assign(handle, nil) }

    /// Leaves the group (revoking partitions) and stops fetching.
    func closeConsumer() { _ = rd_kafka_consumer_close(handle) }

    /// Commits exactly these offsets, waiting for the broker: the first error, of the commit or
    /// of one partition, is thrown.
    func commit(_ offsets: [TopicPartition: Int64]) throws {
        let err = offsets.withPartitionList { list -> rd_kafka_resp_err_t in
            let err = rd_kafka_commit(handle, list, 0)
            if err != RD_KAFKA_RESP_ERR_NO_ERROR { return err }
            return list.firstError ?? RD_KAFKA_RESP_ERR_NO_ERROR
        }
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(code: err, operation: "commit") }
    }

    /// Hands these offsets to librdkafka to commit in the background; the outcome is not awaited.
    func commitInBackground(_ offsets: [TopicPartition: Int64]) {
        _ = offsets.withPartitionList { rd_kafka_commit(handle, $0, 1) }
    }

    /// The group's committed offsets for these partitions (nil where none was committed).
    func committed(_ partitions: [TopicPartition], timeoutMs: Int32) throws -> [TopicPartition: Int64?] {
        try partitions.map { ($0, RDKafkaOffset.invalid) }.withPartitionList { list in
            let err = rd_kafka_committed(handle, list, timeoutMs)
            guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(code: err, operation: "committed") }
            var result: [TopicPartition: Int64?] = [:]
            for (tp, offset, _) in list.elements { result[tp] = offset >= 0 ? offset : nil }
            return result
        }
    }

    /// Stops (or restarts) fetching these partitions; their positions are kept.
    func setPaused(_ partitions: [TopicPartition], paused: Bool) throws {
        let err = partitions.map { ($0, RDKafkaOffset.invalid) }.withPartitionList { list in
            let err = paused ? rd_kafka_pause_partitions(handle, list) : rd_kafka_resume_partitions(handle, list)
            // Per partition too: one that was not paused (resumed) is not reported as such.
            return err != RD_KAFKA_RESP_ERR_NO_ERROR ? err : list.firstError ?? err
        }
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(code: err, operation: paused ? "pause" : "resume") }
    }

    /// Sets where fetching resumes for these partitions.
    func seek(_ offsets: [TopicPartition: Int64]) throws {
        try offsets.withPartitionList { list in
            if let error = rd_kafka_seek_partitions(handle, list, 5_000) {
                defer { rd_kafka_error_destroy(error) }
                throw KafkaError(code: rd_kafka_error_code(error), operation: "seek")
            }
            if let failed = list.firstError { throw KafkaError(code: failed, operation: "seek") }
        }
    }

    /// The error that made this handle unusable (after a poll returned `RDKafkaErrorCode.fatal`).
    func fatalKafkaError(operation: String) -> KafkaError {
        var text = [CChar](repeating: 0, count: 512)
        let code = rd_kafka_fatal_error(handle, &text, text.count)
        return KafkaError(code: code, operation: operation, message: String(cBuffer: text), isRetriable: false, isFatal: true)
    }
}
