import Events
import Foundation
import Kafka
import Logging
import Mongo
import Prometheus
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
    /// Given back when the scenario goes: at most `Slots.scenarios` run at once.
    private let slot: Slots.Token

    init(mongoURI: String = mongoURI) async throws {
        slot = await Slots.scenarios.take()
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

    /// An archiver inside the test process, stopped with `stop()`; `mongoURI` points it elsewhere
    /// (a fault proxy), `registry` receives its series.
    func start(
        batchSize: Int = 1_000, group: String? = nil, mongoURI: String? = nil,
        registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()
    ) async throws -> (Archiver, Task<Void, Error>) {
        var config = configuration(batchSize: batchSize)
        if let group { config.groupID = group }
        if let mongoURI { config.mongoURI = mongoURI }
        var logger = Logger(label: "archiver-test")
        logger.logLevel = .warning
        let archiver = try await Archiver(configuration: config, logger: logger, registry: registry)
        return (archiver, Task { try await archiver.run() })
    }

    /// Arguments for `archiver run` as a separate process, for crash and signal scenarios.
    func runArguments(adminPort: Int, mongoURI: String = mongoURI) -> [String] {
        [
            "run", "--brokers", brokers, "--mongo-uri", mongoURI, "--database", database, "--group", group,
            "--topics", "\(balanceTopic),\(paymentTopic),\(orderTopic)", "--dead-letter-topic", deadLetterTopic,
            "--compensation-topic", compensationTopic, "--admin-port", String(adminPort), "--admin-host", "127.0.0.1",
            "--session-timeout-ms", "6000", "--max-poll-interval-ms", "10000", "--retry-max-ms", "500",
        ]
    }

    func send(_ records: [KafkaRecord]) async throws { _ = try await producer.send(records) }

    /// The executor `archiver run` uses, on this scenario's database and topics, for tests that
    /// must control exactly what one batch holds.
    func executor() -> BatchExecutor {
        let logger = Logger(label: "executor-test")
        let metrics = ArchiverMetrics(registry: PrometheusCollectorRegistry())
        return BatchExecutor(
            store: store, producer: producer,
            retrier: Retrier(
                initialMs: 50, maxMs: 500, logger: logger, metrics: metrics, status: ArchiverStatus(),
                shouldGiveUp: { false }, outage: .sleep),
            metrics: metrics, logger: logger, deadLetterTopic: deadLetterTopic, compensationTopic: compensationTopic)
    }

    /// Records as one consumed batch, offsets in order, all in partition 0 of their topic.
    static func batch(_ records: [KafkaRecord], timestampMs: Int64? = nil) -> [Inbound] {
        records.enumerated().map { i, r in
            Inbound.decode(
                KafkaMessage(
                    topic: r.topic, partition: 0, offset: Int64(i), key: r.key, value: r.value, headers: r.headers,
                    timestampMs: timestampMs))
        }
    }

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

    /// Every message of a topic, proven complete: a marker is produced to each partition after
    /// the fact, and reading ends only once all markers came back, so nothing earlier can be missing.
    /// Use it for a topic's final check: the markers stay in the topic.
    /// (A read for a fixed time by a fresh group can end before the group even joined.)
    func readAll(_ topic: String, partitions: Int32 = 4, seconds: Double = 60) async throws -> [KafkaMessage] {
        let marker = "end-of-test-\(UUID())"
        _ = try await producer.send((0..<partitions).map { KafkaRecord(topic: topic, key: nil, value: Array(marker.utf8), partition: $0) })
        var config = KafkaConsumerConfiguration(connection: KafkaConfiguration(brokers: brokers), groupID: "reader-\(UUID())", topics: [topic])
        config.sessionTimeoutMs = 6_000
        config.maxPollIntervalMs = 10_000
        config.queuedMaxKBytes = 65_536
        config.fetchMaxBytes = 52_428_800
        let consumer = try KafkaConsumer(configuration: config)
        var all: [KafkaMessage] = []
        var markers = 0
        let deadline = Date().addingTimeInterval(seconds)
        while markers < partitions {
            guard Date() < deadline else { throw ReadIncomplete(topic: topic, markers: markers) }
            for m in try await consumer.poll(maxMessages: 1_000, timeout: .milliseconds(200)).messages {
                if m.value.elementsEqual(marker.utf8) { markers += 1 } else if !m.value.starts(with: Array("end-of-test-".utf8)) { all.append(m) }
            }
        }
        await consumer.close()
        return all
    }

    struct ReadIncomplete: Error { var topic: String; var markers: Int }

    /// The group's committed offsets (next offset to read) per partition of a topic, read
    /// without joining the group, so a running archiver is not disturbed.
    func committed(_ topic: String, group: String? = nil) async throws -> [Int32: Int64] {
        let config = KafkaConsumerConfiguration(connection: KafkaConfiguration(brokers: brokers), groupID: group ?? self.group, topics: [])
        let consumer = try KafkaConsumer(configuration: config)
        let offsets = try await consumer.committed((0..<4).map { TopicPartition(topic: topic, partition: $0) })
        await consumer.close()
        var result: [Int32: Int64] = [:]
        for (tp, offset) in offsets { if let offset { result[tp.partition] = offset } }
        return result
    }

    func count(_ collection: MongoCollection) async throws -> Int { try await collection.count() }

    func drop() async { try? await store.database.drop() }
}

/// Builders for the contract's events.
enum Make {
    static func id() -> String { UUID().uuidString.lowercased() }

    static func event(
        _ topic: String, key: String, type: String, saga: String, id: String = id(), time: Int64 = 1_764_000_000_000,
        trace: TraceParent? = nil, _ data: JSONObject
    ) -> KafkaRecord {
        let event = OutgoingEvent(id: id, source: "/test", type: type, timeMs: time, sagaId: saga, data: data, traceParent: trace)
        return KafkaRecord(topic: topic, key: key, value: event.json)
    }

    static func deducted(
        _ s: Scenario, saga: String, user: Int64 = 42, amount: Int64 = 15_000, id: String = id(), time: Int64 = 1_764_000_000_000,
        trace: TraceParent? = nil
    ) -> KafkaRecord {
        event(
            s.balanceTopic, key: String(user), type: EventType.balanceDeducted, saga: saga, id: id, time: time, trace: trace,
            [
                "userId": .int(user), "amount": .int(amount), "balanceBefore": .int(50_000), "balanceAfter": .int(50_000 - amount),
                "orderId": .int(1001), "paymentId": .int(3),
            ])
    }

    static func charged(_ s: Scenario, saga: String, user: Int64 = 42, amount: Int64 = 50_000, id: String = id()) -> KafkaRecord {
        event(
            s.balanceTopic, key: String(user), type: EventType.balanceCharged, saga: saga, id: id,
            ["userId": .int(user), "amount": .int(amount), "balanceBefore": .int(0), "balanceAfter": .int(amount)])
    }

    static func paymentCompleted(_ s: Scenario, saga: String, order: Int64 = 1001, id: String = id(), trace: TraceParent? = nil) -> KafkaRecord {
        event(
            s.paymentTopic, key: String(order), type: EventType.paymentCompleted, saga: saga, id: id, trace: trace,
            ["paymentId": .int(3), "orderId": .int(order), "userId": .int(42), "amount": .int(15_000), "status": .string("COMPLETED")])
    }

    static func paymentFailed(_ s: Scenario, saga: String, order: Int64 = 1001, id: String = id(), reason: String = "declined") -> KafkaRecord {
        event(s.paymentTopic, key: String(order), type: EventType.paymentFailed, saga: saga, id: id, ["reason": .string(reason)])
    }

    static func statusChangeFailed(_ s: Scenario, saga: String, order: Int64 = 1001, id: String = id(), trace: TraceParent? = nil) -> KafkaRecord {
        event(
            s.orderTopic, key: String(order), type: EventType.orderStatusChangeFailed, saga: saga, id: id, trace: trace,
            ["reason": .string("order cancelled")])
    }
}
