import Events
import Mongo

/// The id lists of a `compensations` record, kept under MongoDB's 16 MiB document limit
/// whatever the saga's size: each list holds at most `cap` ids; past it, ids go to the
/// `compensation_ids` collection (one document each, found by `sagaId` and `list`) and the
/// record gains a count of all of them (`deletedCount.<collection>`, `suppressedCount`).
/// Below the cap the record is exactly as contract §5 lays it out.
///
/// A list holds at most 10,000 ids × 256 bytes (the longest id an event may carry) ≈ 2.6 MB: with
/// the contract's two kinds (3 lists) and the reason capped at 1,000 bytes, the record stays under
/// 8 MB; five kinds would still fit MongoDB's 16 MiB.
public enum CompensationList: Sendable, Equatable {
    /// A kind's ids deleted: `deleted.<collection>`.
    case deleted(HistoryKind)
    case suppressed

    public static let cap = 10_000
    public static let overflowCollection = "compensation_ids"

    /// The record's top-level field that holds the list, and the one that holds its count.
    var field: String { self == .suppressed ? "suppressed" : "deleted" }
    var countField: String { self == .suppressed ? "suppressedCount" : "deletedCount" }

    /// The list's dotted path in the record: `deleted.<collection>` or `suppressed`.
    public var path: String { self == .suppressed ? field : "\(field).\(name)" }

    /// Where the record counts the list's ids once some have overflowed.
    public var countPath: String { self == .suppressed ? countField : "\(countField).\(name)" }

    /// The list's name in `compensation_ids`.
    public var name: String {
        switch self {
        case .deleted(let kind): kind.collection
        case .suppressed: "suppressed"
        }
    }

    /// The list's count in a record, kept once some of its ids overflowed (nil before).
    public func count(in record: Document) -> Int? { Self.value(at: countPath, in: record)?.int64Value.map { Int($0) } }

    /// The list's ids in a record (nil when the record has no such field).
    public func ids(in record: Document) -> [String]? { Self.value(at: path, in: record)?.arrayValue?.compactMap(\.stringValue) }

    private static func value(at dottedPath: String, in record: Document) -> BSON? {
        var value: BSON? = .document(record)
        for part in dottedPath.split(separator: ".") { value = value?.documentValue?[String(part)] }
        return value
    }
}

extension HistoryStore {
    public var compensationIds: MongoCollection { database.collection(CompensationList.overflowCollection) }

    /// Adds `ids` to one list of the saga's record: up to the cap into the record, the rest into
    /// `compensation_ids`, counted. Idempotent; concurrent writers are kept under the cap by a
    /// guard on the list's size at the time it was read. No record, nothing listed (a record is
    /// written before anything is listed in it, and never deleted).
    func list(_ ids: [String], in list: CompensationList, of saga: String) async throws {
        guard !ids.isEmpty else { return }
        var unique: [String] = []
        var seen = Set<String>()
        for id in ids where seen.insert(id).inserted { unique.append(id) }
        // Each miss means another writer grew the list meanwhile; after a few, the rest overflows:
        // the loop always ends, and the record stays under the cap.
        for attempt in 0... {
            // Top-level fields only: dotted projections are not projected alike by every server.
            let record = try await compensations.find(
                ["_id": .string(saga)], options: FindOptions(limit: 1, projection: [list.field: 1, list.countField: 1])
            ).first
            guard let record else { return }
            let present = list.ids(in: record)
            let listed = Set(present ?? [])
            let new = unique.filter { !listed.contains($0) }
            guard !new.isEmpty else { return }
            // Once a list has overflowed (its count is kept), it stays overflowing: every id past
            // that point goes where the count counts it.
            let overflowed = list.count(in: record) != nil
            let room = attempt < 5 && !overflowed ? max(0, CompensationList.cap - listed.count) : 0
            let head = Array(new.prefix(room))
            if !head.isEmpty {
                // Only if nobody grew the list since it was read: else read it again.
                let guardOnSize: BSON = present.map { .document(["$size": .int32(Int32($0.count))]) } ?? .document(["$exists": .bool(false)])
                let result = try await compensations.updateOne(
                    filter: ["_id": .string(saga), list.path: guardOnSize],
                    update: ["$addToSet": .document([list.path: .document(["$each": .array(head.map { .string($0) })])])])
                if result.matched == 0 { continue }
            }
            let tail = Array(new.dropFirst(head.count))
            guard !tail.isEmpty else { return }
            try await overflow(tail, list: list, saga: saga)
            let total = listed.count + head.count + (try await compensationIds.count(["sagaId": .string(saga), "list": .string(list.name)]))
            // $max: counts written by racing writers only ever grow to the true total.
            _ = try await compensations.updateOne(filter: ["_id": .string(saga)], update: ["$max": .document([list.countPath: .int64(Int64(total))])])
            return
        }
    }

    /// One document per id past the cap; the `_id` is unambiguous whatever the ids hold, so a
    /// second insert of the same id is a duplicate, and nothing else is.
    private func overflow(_ ids: [String], list: CompensationList, saga: String) async throws {
        for chunk in ids.chunks(of: 1_000) {
            let documents: [Document] = chunk.map { id in
                [
                    "_id": .string("\(saga.utf8.count):\(saga)|\(list.name)|\(id)"), "sagaId": .string(saga), "list": .string(list.name),
                    "eventId": .string(id),
                ]
            }
            do {
                _ = try await compensationIds.insertMany(documents)
            } catch MongoError.bulkWrite(let failure) where failure.errors.allSatisfy(\.isDuplicateID) {
                // Listed before: a retry, or a racing instance.
            }
        }
    }

    /// Every id of one list of a saga's record: the record's own and those past the cap.
    public func allIds(in list: CompensationList, of saga: String) async throws -> [String] {
        let record = try await compensations.findOne(["_id": .string(saga)])
        var ids = record.flatMap { list.ids(in: $0) } ?? []
        let overflowed = try await compensationIds.find(
            ["sagaId": .string(saga), "list": .string(list.name)], options: FindOptions(projection: ["eventId": 1]))
        ids += overflowed.compactMap { $0["eventId"]?.stringValue }
        return ids
    }
}

extension Array {
    /// Consecutive slices of at most `size` elements: for commands that must stay under MongoDB's
    /// 16 MiB limit whatever the count.
    func chunks(of size: Int) -> [ArraySlice<Element>] {
        stride(from: 0, to: count, by: size).map { self[$0..<Swift.min($0 + size, count)] }
    }
}
