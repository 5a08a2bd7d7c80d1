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
        try await offload { [client] in try client.createTopics(names, partitions: partitions, timeoutMs: timeoutMs) }
    }
}
