import CRdKafka
import Foundation
import Logging

/// Topic administration, for start-up and tests.
public final class KafkaAdmin: Sendable {
    private let client: RDKafkaClient
    private let brokers: String

    public init(configuration: KafkaConfiguration, logger: Logger = Logger(label: "kafka.admin")) throws {
        brokers = configuration.brokers
        client = try RDKafkaClient(kind: .producer, settings: configuration.settings([:]), logger: logger)
    }

    public func checkConnection(timeoutMs: Int32 = 5_000) async throws {
        try await offload { [client, brokers] in try client.checkConnection(brokers: brokers, timeoutMs: timeoutMs) }
    }

    /// Creates the topics that do not exist yet; an existing topic is not an error.
    public func createTopics(_ names: [String], partitions: Int32, timeoutMs: Int32 = 10_000) async throws {
        try await offload { [self] in try createTopicsBlocking(names, partitions: partitions, timeoutMs: timeoutMs) }
    }

    private func createTopicsBlocking(_ names: [String], partitions: Int32, timeoutMs: Int32) throws {
        var errorText = [CChar](repeating: 0, count: 512)
        let newTopics: [OpaquePointer?] = try names.map { name in
            guard let t = rd_kafka_NewTopic_new(name, partitions, 1, &errorText, errorText.count) else {
                throw KafkaError.configuration("topic \(name): \(String(cBuffer: errorText))")
            }
            return t
        }
        defer { newTopics.forEach { rd_kafka_NewTopic_destroy($0) } }
        let resultQueue = rd_kafka_queue_new(client.handle)
        defer { rd_kafka_queue_destroy(resultQueue) }
        var topics = newTopics
        rd_kafka_CreateTopics(client.handle, &topics, topics.count, nil, resultQueue)
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
