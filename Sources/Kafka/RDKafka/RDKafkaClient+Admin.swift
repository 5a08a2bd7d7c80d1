import CRdKafka

extension RDKafkaClient {
    /// Creates the topics that do not exist yet, with one replica each; an existing topic is not an error.
    func createTopics(_ names: [String], partitions: Int32, timeoutMs: Int32) throws {
        var errorText = [CChar](repeating: 0, count: 512)
        let newTopics: [OpaquePointer?] = try names.map { name in
            guard let t = rd_kafka_NewTopic_new(name, partitions, 1, &errorText, errorText.count) else {
                throw KafkaError.configuration("topic \(name): \(String(cBuffer: errorText))")
            }
            return t
        }
        defer { newTopics.forEach { rd_kafka_NewTopic_destroy($0) } }
        let resultQueue = rd_kafka_queue_new(handle)
        defer { rd_kafka_queue_destroy(resultQueue) }
        var topics = newTopics
        rd_kafka_CreateTopics(handle, &topics, topics.count, nil, resultQueue)
        guard let event = rd_kafka_queue_poll(resultQueue, timeoutMs + 1_000) else {
            throw KafkaError(code: RD_KAFKA_RESP_ERR__TIMED_OUT, operation: "create topics")
        }
        defer { rd_kafka_event_destroy(event) }
        if rd_kafka_event_error(event) != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw KafkaError(code: rd_kafka_event_error(event), operation: "create topics")
        }
        var count = 0
        guard let result = rd_kafka_event_CreateTopics_result(event),
            let results = rd_kafka_CreateTopics_result_topics(result, &count)
        else { return }
        for i in 0..<count {
            let err = rd_kafka_topic_result_error(results[i])
            if err != RD_KAFKA_RESP_ERR_NO_ERROR && err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS {
                throw KafkaError(code: err, operation: "create topic \(String(cString: rd_kafka_topic_result_name(results[i])))")
            }
        }
    }
}
