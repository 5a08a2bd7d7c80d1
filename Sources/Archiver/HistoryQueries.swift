import Events
import Mongo

/// Where a page of history ends: the last document's time and id. Documents are ordered by
/// both, so paging never skips documents that share a millisecond.
public struct HistoryCursor: Sendable, Equatable, CustomStringConvertible {
    public var occurredAtMs: Int64
    /// nil: everything before `occurredAtMs` (a plain time given by hand).
    public var id: String?

    public init(occurredAtMs: Int64, id: String?) {
        self.occurredAtMs = occurredAtMs
        self.id = id
    }

    /// `TIME` or `TIME/ID`, as `description` prints it.
    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let ms = Timestamp.parse(String(parts[0])) else { return nil }
        if parts.count == 2 && parts[1].isEmpty { return nil }
        self.init(occurredAtMs: ms, id: parts.count == 2 ? String(parts[1]) : nil)
    }

    /// The cursor of the document a page ended with.
    public init?(after doc: Document) {
        guard case .datetime(let ms) = doc["occurredAt"], let id = doc["_id"]?.stringValue else { return nil }
        self.init(occurredAtMs: ms, id: id)
    }

    public var description: String { Timestamp.format(occurredAtMs) + (id.map { "/\($0)" } ?? "") }
}

/// The operators' read side (`archiver history`): each query is served by a contract index.
extension HistoryStore {
    static let newestFirst: Document = ["occurredAt": -1, "_id": -1]

    /// One kind's documents whose `field` equals `value`, newest first; `before` pages back
    /// through long histories. Served by the kind's index that starts with `field`.
    public func history(
        of kind: HistoryKind, where field: String, equals value: Int64, sinceMs: Int64? = nil, untilMs: Int64? = nil,
        before: HistoryCursor? = nil, limit: Int
    ) async throws -> [Document] {
        try await collection(of: kind).find(
            Self.filter([field: .int64(value)], sinceMs: sinceMs, untilMs: untilMs, before: before),
            options: FindOptions(sort: Self.newestFirst, limit: limit))
    }

    /// Everything archived for one saga (index {sagaId: 1}), per kind in the table's order, and
    /// its compensation record, if any.
    public func saga(_ sagaId: String) async throws -> (history: [(kind: HistoryKind, documents: [Document])], compensation: Document?) {
        async let compensation = compensations.findOne(["_id": .string(sagaId)])
        let history = try await eachKind { kind in
            try await collection(of: kind).find(["sagaId": .string(sagaId)], options: FindOptions(sort: ["occurredAt": 1, "_id": 1]))
        }
        return (zip(kinds.all, history).map { (kind: $0.0, documents: $0.1) }, try await compensation)
    }

    /// The saga id of every document of one kind whose saga is among `sagas`, one per document
    /// (so a duplicate shows), only those of event `type` when given. Index {sagaId: 1}.
    public func sagaIds(of kind: HistoryKind, among sagas: [String], type: String? = nil) async throws -> [String] {
        var filter: Document = ["sagaId": .document(["$in": .array(sagas.map { .string($0) })])]
        if let type, let field = kind.typeField, let index = kind.types.firstIndex(of: type) {
            filter.append(field.name, .string(field.values[index]))
        }
        return try await collection(of: kind).find(filter, options: FindOptions(projection: ["sagaId": 1])).compactMap {
            $0["sagaId"]?.stringValue
        }
    }

    /// `since <= occurredAt < until`, and strictly after the cursor in (occurredAt, _id) descending order:
    /// `occurredAt < t  OR  (occurredAt == t AND _id < id)`.
    static func filter(_ base: Document, sinceMs: Int64?, untilMs: Int64?, before: HistoryCursor?) -> Document {
        var range = Document()
        if let sinceMs { range.append("$gte", .datetime(sinceMs)) }
        // A cursor without an id is a plain upper bound, like --until.
        let plainBefore = before.flatMap { $0.id == nil ? $0.occurredAtMs : nil }
        if let upper = [untilMs, plainBefore].compactMap({ $0 }).min() { range.append("$lt", .datetime(upper)) }
        var filter = base
        if !range.isEmpty { filter.append("occurredAt", .document(range)) }
        guard let before, let id = before.id else { return filter }
        filter.append(
            "$or",
            .array([
                .document(["occurredAt": .document(["$lt": .datetime(before.occurredAtMs)])]),
                .document(["occurredAt": .datetime(before.occurredAtMs), "_id": .document(["$lt": .string(id)])]),
            ]))
        return filter
    }
}
