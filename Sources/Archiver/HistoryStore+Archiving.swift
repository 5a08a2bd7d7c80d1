import Events
import Mongo

/// What `archiver run` and `archiver replay` do to MongoDB, each a named operation: the rest of
/// the archiver builds no query. Every operation is idempotent, so a retried or redone batch has
/// no second effect.
extension HistoryStore {
    /// Inserts one kind's history, unordered. A duplicate `_id` means the event is archived already
    /// (a redelivery): the same effect as an upsert, at the cost of an insert. Returns the items
    /// MongoDB refused for good (to dead-letter); throws to retry everything when any refusal is transient.
    func insertHistory(
        _ writes: [HistoryWrite], of kind: HistoryKind, archivedAtMs: Int64
    ) async throws -> [(inboundIndex: Int, kind: String, message: String)] {
        let collection = collection(of: kind)
        do {
            _ = try await collection.insertMany(count: writes.count) { i, bson in
                HistoryDocument.write(writes[i], of: kind, archivedAtMs: archivedAtMs, into: &bson)
            }
            return []
        } catch MongoError.bulkWrite(let failure) {
            if failure.errors.contains(where: { MongoError.transientCodes.contains($0.code) || !writes.indices.contains($0.index) }) {
                throw TransientBulkFailure(description: "bulk write to \(collection.name): transient item failure(s): \(failure.errors.count)")
            }
            // Another unique index (an operator's) refusing the document is a refusal for good.
            return failure.errors.filter { !$0.isDuplicateID }.map {
                (writes[$0.index].inboundIndex, "rejected", "MongoDB refused the document: \($0.code) \($0.message)")
            }
        }
    }

    /// Deletes suppressed events' documents, if any were written (by a write that raced a
    /// compensation, or by an instance that died before its re-check).
    func deleteHistory(_ suppressions: [Suppression]) async throws {
        // By id and saga: an id reused by another saga (a producer bug) must not take that saga's history.
        for kind in kinds.all {
            let models: [WriteModel] = suppressions.filter { $0.kind == kind }.map {
                .deleteOne(filter: ["_id": .string($0.eventId), "sagaId": .string($0.sagaId)])
            }
            if !models.isEmpty { _ = try await collection(of: kind).bulkWrite(models) }
        }
    }

    /// Deletes exactly these documents of a saga: those its record lists as deleted.
    func deleteHistory(ids: [String], of kind: HistoryKind, saga: String) async throws {
        // In chunks: one `$in` of a huge saga's ids would pass the 16 MiB command limit.
        for chunk in ids.chunks(of: 1_000) {
            try await collection(of: kind).deleteMany(["_id": .document(["$in": .array(chunk.map { .string($0) })]), "sagaId": .string(saga)])
        }
    }

    /// Ids of a saga's documents of one kind.
    func historyIDs(of saga: String, kind: HistoryKind) async throws -> [String] {
        try await collection(of: kind).find(["sagaId": .string(saga)], options: FindOptions(projection: ["_id": 1])).compactMap {
            $0["_id"]?.stringValue
        }
    }

    /// Writes a saga's compensation record unless it has one. Returns whether this call wrote it.
    /// The ids planned as deleted go in up to the cap (`list` adds the rest).
    func recordCompensation(_ c: NewCompensation, compensatedAtMs: Int64) async throws -> Bool {
        var document: Document = [
            "reason": .string(c.failure.reason), "failedEvent": .string(c.failure.eventId), "failedType": .string(c.failure.type),
            "deleted": .document(
                Document(
                    zip(kinds.all, c.prior).map { kind, ids in (kind.collection, BSON.array(ids.prefix(CompensationList.cap).map { .string($0) })) })),
            "suppressed": .array([]), "compensatedAt": .datetime(compensatedAtMs),
        ]
        if let trace = c.failure.traceParent { document.append("traceId", .string(trace.traceId.hex)) }
        let result = try await compensations.updateOne(
            filter: ["_id": .string(c.failure.sagaId)], update: ["$setOnInsert": .document(document)], upsert: true)
        return result.upserted > 0
    }

    /// A saga's compensation record, if it has one.
    func compensationRecord(of saga: String) async throws -> CompensationRecord? {
        try await compensations.findOne(["_id": .string(saga)]).flatMap { CompensationRecord($0, kinds: kinds) }
    }
}
