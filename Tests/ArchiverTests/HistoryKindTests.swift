import Events
import Foundation
import Kafka
import Logging
import Mongo
import Prometheus
import TestSupport
import Testing

@testable import Archiver

/// A kind of history the archiver's sources have never heard of, defined here alone: loyalty
/// points earned by a purchase, on a topic and into a collection of their own.
enum LoyaltyHistory {
    static let earned = "test.loyalty.earned"
    static let userId = DataField.integer("userId", slot: 0)
    static let points = DataField.integer("points", slot: 1)
    static let orderId = DataField.integer("orderId", slot: 2, required: false)
    static let tier = DataField.text("tier", slot: 0)

    static func kind(topic: String) -> HistoryKind {
        HistoryKind(
            name: "loyalty", collection: "loyalty_history", topic: topic, types: [earned], failureTypes: HistoryKind.contractFailures,
            fields: [userId, points, orderId, tier],
            indexes: [IndexModel(keys: ["userId": .int32(1), "occurredAt": .int32(-1)], name: "userId_1_occurredAt_-1"), HistoryKind.sagaIndex],
            columns: [
                HistoryColumn("OCCURRED AT", "occurredAt", .time), HistoryColumn("POINTS", "points", .amount), HistoryColumn("TIER", "tier"),
                HistoryColumn("SAGA", "sagaId"), HistoryColumn("EVENT", "_id"),
            ],
            sagaColumns: [HistoryColumn("POINTS", "points", .amount), HistoryColumn("EVENT", "_id")],
            writeFields: { e, bson in
                bson.append("userId", int64: e.integer(userId))
                bson.append("points", int64: e.integer(points))
                bson.append("tier", e.text(tier))
                if let orderId = e.data.integer(orderId) { bson.append("orderId", int64: orderId) }
            })
    }
}

@Suite("History kinds as data: a kind defined only in a test")
struct HistoryKindTests {
    /// The scenario's topics plus the loyalty topic, and the contract's kinds plus loyalty.
    struct Setup {
        let s: Scenario
        let loyalty: HistoryKind
        let kinds: HistoryKinds
        let store: HistoryStore
        var topic: String { loyalty.topic }

        init() async throws {
            s = try await Scenario()
            loyalty = LoyaltyHistory.kind(topic: "t.\(s.id).loyalty")
            kinds = HistoryKinds(HistoryKinds.builtIn.all + [loyalty])
            store = HistoryStore(database: s.store.database, kinds: kinds)
            try await KafkaAdmin(configuration: KafkaConfiguration(brokers: brokers)).createTopics([loyalty.topic], partitions: 4)
        }

        func configuration() -> ArchiverConfiguration {
            var config = s.configuration()
            config.kinds = kinds
            config.topics.append(topic)
            return config
        }

        func start() async throws -> (Archiver, Task<Void, Error>) {
            var logger = Logger(label: "kinds-test")
            logger.logLevel = .warning
            let archiver = try await Archiver(configuration: configuration(), logger: logger, registry: PrometheusCollectorRegistry())
            return (archiver, Task { try await archiver.run() })
        }

        func earned(
            saga: String, points: Int64, user: Int64 = 42, id: String = Make.id(), _ extra: JSONObject = ["tier": .string("gold")]
        )
            -> KafkaRecord
        {
            var data: JSONObject = ["userId": .int(user), "points": .int(points), "orderId": .int(1001)]
            for (key, value) in extra.members { data[key] = value }
            return Make.event(topic, key: String(user), type: LoyaltyHistory.earned, saga: saga, id: id, data)
        }
    }

    @Test func aKindRegisteredByATestIsArchivedCompensatedQueriedAndReplayed() async throws {
        let k = try await Setup()
        let s = k.s
        let kept = Make.id(), deleted = Make.id(), deduct = Make.id(), late = Make.id()
        let missingPoints = k.earned(saga: "pay-72", points: 0, ["points": .null, "tier": .string("gold")])
        try await s.send([
            k.earned(saga: "pay-71", points: 120, id: kept), k.earned(saga: "pay-70", points: 80, id: deleted),
            Make.deducted(s, saga: "pay-70", id: deduct), missingPoints,
        ])
        let (archiver, task) = try await k.start()

        // Archived: its document as its writer lays it out, between the archiver's own fields.
        #expect(try await eventually { archiver.totals.archived == 3 && archiver.totals.deadLettered == 1 })
        let doc = try #require(try await k.store.collection(of: k.loyalty).findOne(["_id": .string(kept)]))
        #expect(
            doc.keys == ["_id", "userId", "points", "tier", "orderId", "sagaId", "occurredAt", "archivedAt", "source"], "\(doc.keys)")
        #expect(doc["points"]?.int64Value == 120 && doc["tier"] == "gold" && doc["sagaId"] == "pay-71")
        #expect(doc["source"]?.documentValue?["topic"] == .string(k.topic))
        let indexes = try await k.store.collection(of: k.loyalty).listIndexes().compactMap { $0["key"]?.documentValue?.keys }
        #expect(Set(indexes) == [["_id"], ["userId", "occurredAt"], ["sagaId"]])
        // A required field missing: a schema dead letter naming it, as for the contract's kinds.
        let letters = try await s.read(s.deadLetterTopic, count: 1)
        #expect(letters.count == 1 && letters.first?.header(DeadLetterHeader.errorMessage)?.stringValue.contains("data.points") == true)

        // Compensated: the saga fails downstream, its history of every kind goes, and the record
        // and the event list the loyalty ids beside the contract's.
        try await s.send([Make.statusChangeFailed(s, saga: "pay-70")])
        #expect(try await eventually { archiver.totals.compensated == 1 })
        try await s.send([k.earned(saga: "pay-70", points: 5, id: late)])
        #expect(try await eventually { archiver.totals.suppressed == 1 })
        archiver.stop()
        try await task.value
        #expect(try await k.store.collection(of: k.loyalty).find().compactMap { $0["_id"]?.stringValue } == [kept])
        #expect(try await s.count(s.store.collection(of: .balance)) == 0)
        let record = try #require(try await s.store.compensations.findOne(["_id": "pay-70"]))
        #expect(record["deleted"]?.documentValue?["loyalty_history"] == .array([.string(deleted)]))
        #expect(record["deleted"]?.documentValue?["balance_history"] == .array([.string(deduct)]))
        #expect(record["suppressed"] == .array([.string(late)]))
        let emitted = try await s.readAll(s.compensationTopic)
        #expect(emitted.count == 1)
        let event = try JSONValue.parse(emitted.first?.value ?? [])
        #expect(event["data"]?["deleted"]?["loyalty_history"] == .array([.string(deleted)]))
        #expect(event["data"]?["deleted"]?["payment_history"] == .array([]))

        // Queried through the store's queries, as `archiver history` asks them, with the kind's columns.
        let page = try await k.store.history(of: k.loyalty, where: "userId", equals: 42, limit: 10)
        #expect(page.map { $0["_id"]?.stringValue } == [kept])
        #expect(k.loyalty.columns.allSatisfy { page[0][$0.field] != nil })
        let saga = try await k.store.saga("pay-71")
        #expect(saga.history.map(\.kind.collection) == ["balance_history", "payment_history", "loyalty_history"])
        #expect(saga.history.last?.documents.count == 1 && saga.compensation == nil)

        // Replayed: the dead letter, its cause fixed (points present), archived by `archiver replay`.
        let fixed = k.earned(saga: "pay-72", points: 7)
        let letter = DeadLetter(
            message: KafkaMessage(topic: k.topic, partition: 0, offset: 9, key: fixed.key, value: fixed.value),
            origin: Origin(topic: k.topic, partition: 0, offset: 9), kind: "schema", reason: "old", attempts: 1,
            failedAtMs: 1_764_000_000_000)
        try await s.send([letter.record(topic: s.deadLetterTopic)])
        var config = k.configuration()
        config.groupID = "replay-\(s.id)"
        let summary = try await Replayer(configuration: config, logger: Logger(label: "replay-test")).run(
            filter: .init(eventID: try JSONValue.parse(fixed.value)["id"]?.stringValue), dryRun: false, idleMs: 4_000)
        #expect(summary.archived == 1)
        let replayed = try await k.store.history(of: k.loyalty, where: "userId", equals: 42, limit: 10)
        #expect(replayed.count == 2 && replayed.contains { $0["points"]?.int64Value == 7 && $0["source"]?.documentValue?["offset"]?.int64Value == 9 })
        await s.drop()
    }

    @Test func theBuiltInTableIsTheContractsAndAnAddedKindGetsItsTypes() {
        #expect(HistoryKinds.builtIn.all.map(\.collection) == ["balance_history", "payment_history"])
        #expect(HistoryKinds.builtIn.topics == [Topic.balance, Topic.payment, Topic.order])
        #expect(HistoryKinds.builtIn.failureTypes == [EventType.orderStatusChangeFailed, EventType.paymentFailed])
        let schema = HistoryKinds([HistoryKind.balance, LoyaltyHistory.kind(topic: "t")]).schema
        #expect(schema.roles == [.history(kind: 0), .history(kind: 0), .history(kind: 1), .failure, .failure])
    }
}
