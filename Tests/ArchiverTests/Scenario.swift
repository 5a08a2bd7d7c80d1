import Events
import Foundation
import Kafka
import Logging
import Mongo
import TestSupport
import Testing
@testable import Archiver

// Every scenario gets its own topics, database and group on the real servers started by
// scripts/services, so scenarios run side by side without seeing each other.
let brokers = ProcessInfo.processInfo.environment["KAFKA_BROKERS"] ?? "127.0.0.1:21092"
let mongoURI = ProcessInfo.processInfo.environment["MONGO_URI"] ?? "mongodb://127.0.0.1:21017"

final class Scenario: Sendable {
    let id = UUID().uuidString.prefix(8).lowercased()
    var balanceTopic: String { "t.\(id).balance" }
    var paymentTopic: String { "t.\(id).payment" }
    var orderTopic: String { "t.\(id).order" }
    var deadLetterTopic: String { "t.\(id).dlq" }
    var compensationTopic: String { "t.\(id).compensation" }
    var database: String { "t_\(id)" }
    var group: String { "g-\(id)" }
    let producer: KafkaProducer
    let store: HistoryStore

    init(mongoURI: String = mongoURI) async throws {
        producer = try KafkaProducer(configuration: KafkaConfiguration(brokers: brokers))
        store = HistoryStore(database: try MongoClient(uri: mongoURI).database("t_\(id)"))
        try await KafkaAdmin(configuration: KafkaConfiguration(brokers: brokers))
            .createTopics([balanceTopic, paymentTopic, orderTopic, deadLetterTopic, compensationTopic], partitions: 4)
    }

    func configuration(batchSize: Int = 1_000) -> ArchiverConfiguration {
        var config = ArchiverConfiguration(kafka: KafkaConfiguration(brokers: brokers), mongoURI: mongoURI, database: database, groupID: group)
        config.topics = [balanceTopic, paymentTopic, orderTopic]
        config.deadLetterTopic = deadLetterTopic
        config.compensationTopic = compensationTopic
        config.batchSize = batchSize
        config.sessionTimeoutMs = 6_000
        config.maxPollIntervalMs = 10_000
        config.retryMaxMs = 500
        return config
    }

    /// An archiver inside the test process, stopped with `stop()`.
    func start(batchSize: Int = 1_000, group: String? = nil) async throws -> (Archiver, Task<Void, Error>) {
        var config = configuration(batchSize: batchSize)
        if let group { config.groupID = group }
        var logger = Logger(label: "archiver-test")
        logger.logLevel = .warning
        let archiver = try await Archiver(configuration: config, logger: logger)
        return (archiver, Task { try await archiver.run() })
    }

    /// Arguments for `archiver run` as a separate process, for crash and signal scenarios.
    func runArguments(adminPort: Int, mongoURI: String = mongoURI) -> [String] {
        ["run", "--brokers", brokers, "--mongo-uri", mongoURI, "--database", database, "--group", group,
         "--topics", "\(balanceTopic),\(paymentTopic),\(orderTopic)", "--dead-letter-topic", deadLetterTopic,
         "--compensation-topic", compensationTopic, "--admin-port", String(adminPort), "--admin-host", "127.0.0.1",
         "--session-timeout-ms", "6000", "--max-poll-interval-ms", "10000", "--retry-max-ms", "500"]
    }

    func send(_ records: [KafkaRecord]) async throws { _ = try await producer.send(records) }

    /// All messages of a topic, read by a fresh group until `count` arrived or time ran out.
    func read(_ topic: String, count: Int, seconds: Double = 30) async throws -> [KafkaMessage] {
        var config = KafkaConsumerConfiguration(connection: KafkaConfiguration(brokers: brokers), groupID: "reader-\(UUID())", topics: [topic])
        config.sessionTimeoutMs = 6_000
        config.maxPollIntervalMs = 10_000
        let consumer = try KafkaConsumer(configuration: config)
        var all: [KafkaMessage] = []
        let deadline = Date().addingTimeInterval(seconds)
        while all.count < count && Date() < deadline {
            all += try await consumer.poll(maxMessages: 1_000, timeout: .milliseconds(200)).messages
        }
        // A little longer, to catch messages that should not be there.
        let settle = Date().addingTimeInterval(1)
        while Date() < settle { all += try await consumer.poll(maxMessages: 1_000, timeout: .milliseconds(200)).messages }
        await consumer.close()
        return all
    }

    func count(_ collection: MongoCollection) async throws -> Int { try await collection.count() }

    func drop() async { try? await store.database.drop() }
}

/// Builders for the contract's events.
enum Make {
    static func id() -> String { UUID().uuidString.lowercased() }

    static func event(_ topic: String, key: String, type: String, saga: String, id: String = id(), time: Int64 = 1_764_000_000_000,
                      _ data: JSONObject) -> KafkaRecord {
        KafkaRecord(topic: topic, key: key, value: OutgoingEvent(id: id, source: "/test", type: type, timeMs: time, sagaId: saga, data: data).json)
    }

    static func deducted(_ s: Scenario, saga: String, user: Int64 = 42, amount: Int64 = 15_000, id: String = id(), time: Int64 = 1_764_000_000_000) -> KafkaRecord {
        event(s.balanceTopic, key: String(user), type: EventType.balanceDeducted, saga: saga, id: id, time: time,
              ["userId": .int(user), "amount": .int(amount), "balanceBefore": .int(50_000), "balanceAfter": .int(50_000 - amount),
               "orderId": .int(1001), "paymentId": .int(3)])
    }

    static func charged(_ s: Scenario, saga: String, user: Int64 = 42, amount: Int64 = 50_000, id: String = id()) -> KafkaRecord {
        event(s.balanceTopic, key: String(user), type: EventType.balanceCharged, saga: saga, id: id,
              ["userId": .int(user), "amount": .int(amount), "balanceBefore": .int(0), "balanceAfter": .int(amount)])
    }

    static func paymentCompleted(_ s: Scenario, saga: String, order: Int64 = 1001, id: String = id()) -> KafkaRecord {
        event(s.paymentTopic, key: String(order), type: EventType.paymentCompleted, saga: saga, id: id,
              ["paymentId": .int(3), "orderId": .int(order), "userId": .int(42), "amount": .int(15_000), "status": .string("COMPLETED")])
    }

    static func paymentFailed(_ s: Scenario, saga: String, order: Int64 = 1001, id: String = id(), reason: String = "declined") -> KafkaRecord {
        event(s.paymentTopic, key: String(order), type: EventType.paymentFailed, saga: saga, id: id, ["reason": .string(reason)])
    }

    static func statusChangeFailed(_ s: Scenario, saga: String, order: Int64 = 1001, id: String = id()) -> KafkaRecord {
        event(s.orderTopic, key: String(order), type: EventType.orderStatusChangeFailed, saga: saga, id: id, ["reason": .string("order cancelled")])
    }
}
