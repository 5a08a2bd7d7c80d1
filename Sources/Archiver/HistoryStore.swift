import Events
import Mongo

/// The archiver's MongoDB side: the three collections of contract §5 and their indexes.
public struct HistoryStore: Sendable {
    public static let balanceCollection = "balance_history"
    public static let paymentCollection = "payment_history"
    public static let compensationCollection = "compensations"
    /// Dead letters too large for the broker, whole, by their payload reference.
    public static let deadLetterPayloadCollection = "dead_letter_payloads"

    public let database: MongoDatabase
    public var balance: MongoCollection { database.collection(Self.balanceCollection) }
    public var payment: MongoCollection { database.collection(Self.paymentCollection) }
    public var compensations: MongoCollection { database.collection(Self.compensationCollection) }
    public var deadLetterPayloads: MongoCollection { database.collection(Self.deadLetterPayloadCollection) }

    public init(database: MongoDatabase) { self.database = database }

    /// Connects and pings, so an unreachable server is one named error at start, not a hang later.
    public static func connect(uri: String, database: String) async throws -> HistoryStore {
        let client = try MongoClient(uri: uri)
        do { try await client.ping() } catch { throw ArchiverError.unreachable("MongoDB at \(client.redactedURI): \(error)") }
        return HistoryStore(database: client.database(database))
    }

    /// Creates the collections and the contract's indexes; safe to repeat.
    public func migrate() async throws {
        for name in [Self.balanceCollection, Self.paymentCollection, Self.compensationCollection] {
            try await database.createCollection(name)
        }
        try await balance.createIndexes([
            IndexModel(keys: ["userId": .int32(1), "occurredAt": .int32(-1)], name: "userId_1_occurredAt_-1"),
            IndexModel(keys: ["sagaId": .int32(1)], name: "sagaId_1"),
        ])
        try await payment.createIndexes([
            IndexModel(keys: ["orderId": .int32(1)], name: "orderId_1"),
            IndexModel(keys: ["userId": .int32(1), "occurredAt": .int32(-1)], name: "userId_1_occurredAt_-1"),
            IndexModel(keys: ["sagaId": .int32(1)], name: "sagaId_1"),
        ])
        try await compensationIds.createIndexes([IndexModel(keys: ["sagaId": .int32(1), "list": .int32(1)], name: "sagaId_1_list_1")])
    }

    /// The compensation records of these sagas, by saga id.
    func compensationRecords(for sagas: Set<String>) async throws -> [String: CompensationRecord] {
        guard !sagas.isEmpty else { return [:] }
        let docs = try await compensations.find(
            ["_id": .document(["$in": .array(sagas.map { .string($0) })])],
            options: FindOptions(projection: ["reason": 1, "failedEvent": 1, "deleted": 1, "deletedCount": 1]))
        var result: [String: CompensationRecord] = [:]
        for doc in docs {
            guard let record = CompensationRecord(doc) else { continue }
            result[record.sagaId] = record
        }
        return result
    }
}

/// What a `compensations` document says, as far as the archiver needs to act on it again.
struct CompensationRecord: Sendable, Equatable {
    var sagaId: String
    var failedEvent: String
    var reason: String
    /// The ids the record itself lists (at most `CompensationList.cap` each).
    var deletedBalance: [String]
    var deletedPayment: [String]
    /// All the saga's deleted ids, those past the cap included.
    var deletedCount: Int
    /// The failure event's trace, when it carried one.
    var traceId: TraceID?

    init(sagaId: String, failedEvent: String, reason: String, deletedBalance: [String], deletedPayment: [String], deletedCount: Int? = nil) {
        self.sagaId = sagaId
        self.failedEvent = failedEvent
        self.reason = reason
        self.deletedBalance = deletedBalance
        self.deletedPayment = deletedPayment
        self.deletedCount = deletedCount ?? (deletedBalance.count + deletedPayment.count)
    }

    init?(_ doc: Document) {
        guard let id = doc["_id"]?.stringValue else { return nil }
        let deleted = doc["deleted"]?.documentValue
        let balance = deleted?[HistoryStore.balanceCollection]?.arrayValue?.compactMap(\.stringValue) ?? []
        let payment = deleted?[HistoryStore.paymentCollection]?.arrayValue?.compactMap(\.stringValue) ?? []
        let counts = doc["deletedCount"]?.documentValue
        let count = { (list: String, listed: Int) in max(listed, Int(counts?[list]?.int64Value ?? 0)) }
        self.init(
            sagaId: id, failedEvent: doc["failedEvent"]?.stringValue ?? "", reason: doc["reason"]?.stringValue ?? "",
            deletedBalance: balance, deletedPayment: payment,
            deletedCount: count(HistoryStore.balanceCollection, balance.count) + count(HistoryStore.paymentCollection, payment.count))
        traceId = doc["traceId"]?.stringValue.flatMap(TraceID.init(hex:))
    }
}

extension Origin {
    /// The `source` field of a history document.
    var document: BSON { .document(["topic": .string(topic), "partition": .int32(partition), "offset": .int64(offset)]) }
}

/// History documents exactly as contract §5 lays them out, written field by field straight into
/// the bulk's buffer: the hot path builds no `Document` trees.
enum HistoryDocument {
    static func write(_ w: HistoryWrite, archivedAtMs: Int64, into bson: inout BSONWriter) {
        bson.append("_id", w.eventId)
        switch w.event {
        case .balance(let b):
            bson.append("userId", int64: b.userId)
            bson.append("type", b.kind.rawValue)
            bson.append("amount", int64: b.amount)
            bson.append("balanceBefore", int64: b.balanceBefore)
            bson.append("balanceAfter", int64: b.balanceAfter)
            if let orderId = b.orderId { bson.append("orderId", int64: orderId) }
            if let paymentId = b.paymentId { bson.append("paymentId", int64: paymentId) }
            bson.append("sagaId", b.sagaId)
            bson.append("occurredAt", dateMs: b.occurredAtMs)
            if let trace = b.traceParent { trace.traceId.withHex { bson.append("traceId", utf8: $0) } }
        case .payment(let p):
            bson.append("paymentId", int64: p.paymentId)
            bson.append("orderId", int64: p.orderId)
            bson.append("userId", int64: p.userId)
            bson.append("amount", int64: p.amount)
            bson.append("status", p.status)
            bson.append("sagaId", p.sagaId)
            bson.append("occurredAt", dateMs: p.occurredAtMs)
            if let trace = p.traceParent { trace.traceId.withHex { bson.append("traceId", utf8: $0) } }
        }
        bson.append("archivedAt", dateMs: archivedAtMs)
        bson.appendDocument("source") { source in
            source.append("topic", w.source.topic)
            source.append("partition", int32: w.source.partition)
            source.append("offset", int64: w.source.offset)
        }
    }
}
