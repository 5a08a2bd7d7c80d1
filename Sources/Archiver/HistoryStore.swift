import Events
import Mongo

/// The archiver's MongoDB side: a collection per history kind, the compensation records of
/// contract §5, and their indexes.
public struct HistoryStore: Sendable {
    public static let compensationCollection = "compensations"
    /// Dead letters too large for the broker, whole, by their payload reference.
    public static let deadLetterPayloadCollection = "dead_letter_payloads"

    public let database: MongoDatabase
    public let kinds: HistoryKinds
    public var compensations: MongoCollection { database.collection(Self.compensationCollection) }
    public var deadLetterPayloads: MongoCollection { database.collection(Self.deadLetterPayloadCollection) }

    public init(database: MongoDatabase, kinds: HistoryKinds = .builtIn) {
        self.database = database
        self.kinds = kinds
    }

    /// Connects and pings, so an unreachable server is one named error at start, not a hang later.
    public static func connect(uri: String, database: String, kinds: HistoryKinds = .builtIn) async throws -> HistoryStore {
        let client = try MongoClient(uri: uri)
        do { try await client.ping() } catch { throw ArchiverError.unreachable("MongoDB at \(client.redactedURI): \(error)") }
        return HistoryStore(database: client.database(database), kinds: kinds)
    }

    public func collection(of kind: HistoryKind) -> MongoCollection { database.collection(kind.collection) }

    /// `body` for every kind at once, the results in the table's order: one round trip's wait, not one per kind.
    func eachKind<T: Sendable>(_ body: @escaping @Sendable (HistoryKind) async throws -> T) async throws -> [T] {
        let all = kinds.all
        return try await withThrowingTaskGroup(of: (Int, T).self) { group in
            for (index, kind) in all.enumerated() { group.addTask { (index, try await body(kind)) } }
            var results = [T?](repeating: nil, count: all.count)
            for try await (index, result) in group { results[index] = result }
            return results.map { $0! }
        }
    }

    /// Creates the collections and the kinds' indexes; safe to repeat.
    public func migrate() async throws {
        for name in kinds.collections { try await database.createCollection(name) }
        for kind in kinds.all { try await collection(of: kind).createIndexes(kind.indexes) }
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
            guard let record = CompensationRecord(doc, kinds: kinds) else { continue }
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
    /// The ids the record itself lists per kind, by index in the table (at most `CompensationList.cap` each).
    var deleted: [[String]]
    /// All the saga's deleted ids, those past the cap included.
    var deletedCount: Int
    /// The failure event's trace, when it carried one.
    var traceId: TraceID?

    init(sagaId: String, failedEvent: String, reason: String, deleted: [[String]], deletedCount: Int? = nil) {
        self.sagaId = sagaId
        self.failedEvent = failedEvent
        self.reason = reason
        self.deleted = deleted
        self.deletedCount = deletedCount ?? deleted.reduce(0) { $0 + $1.count }
    }

    init?(_ doc: Document, kinds: HistoryKinds) {
        guard let id = doc["_id"]?.stringValue else { return nil }
        let deleted = kinds.all.map { CompensationList.deleted($0).ids(in: doc) ?? [] }
        let count = zip(kinds.all, deleted).reduce(0) { sum, kindAndIds in
            sum + max(kindAndIds.1.count, CompensationList.deleted(kindAndIds.0).count(in: doc) ?? 0)
        }
        self.init(
            sagaId: id, failedEvent: doc["failedEvent"]?.stringValue ?? "", reason: doc["reason"]?.stringValue ?? "", deleted: deleted,
            deletedCount: count)
        traceId = doc["traceId"]?.stringValue.flatMap(TraceID.init(hex:))
    }
}

extension Origin {
    /// The `source` field of a history document.
    var document: BSON { .document(["topic": .string(topic), "partition": .int32(partition), "offset": .int64(offset)]) }
}

/// History documents exactly as contract §5 lays them out, written field by field straight into
/// the bulk's buffer: the hot path builds no `Document` trees. The kind writes its own fields.
enum HistoryDocument {
    static func write(_ w: HistoryWrite, of kind: HistoryKind, archivedAtMs: Int64, into bson: inout BSONWriter) {
        let e = w.event
        bson.append("_id", e.eventId)
        kind.writeFields(e, &bson)
        bson.append("sagaId", e.sagaId)
        bson.append("occurredAt", dateMs: e.occurredAtMs)
        if let trace = e.traceParent { trace.traceId.withHex { bson.append("traceId", utf8: $0) } }
        bson.append("archivedAt", dateMs: archivedAtMs)
        bson.appendDocument("source") { source in
            source.append("topic", w.source.topic)
            source.append("partition", int32: w.source.partition)
            source.append("offset", int64: w.source.offset)
        }
    }
}
