import Events
import Kafka
import Mongo
import Telemetry

/// Compensating a failed saga: record, list, delete, emit. Each step is idempotent and the
/// record comes first, so a redelivered failure event finishes what a crash interrupted, and any
/// instance writing the saga's history after the record exists takes its write back itself.
extension BatchExecutor {
    /// Returns false when the saga had already been compensated by a different failure event.
    func compensate(_ c: NewCompensation) async throws -> Bool {
        let saga = c.failure.sagaId
        if try await !store.recordCompensation(c, compensatedAtMs: Timestamp.nowMs()) {
            let existing = try await store.compensationRecord(of: saga)
            guard existing?.failedEvent == c.failure.eventId else {
                // Compensated first by another failure event: this batch's history of the saga was
                // never written, and still belongs in the saga's audit trail.
                try await store.list(c.prior.flatMap { $0 }, in: .suppressed, of: saga)
                return false
            }
            // The same failure redelivered after a crash: the ids it planned as deleted are listed too.
            try await listDeleted(saga, c.prior)
        } else if c.prior.contains(where: { $0.count > CompensationList.cap }) {
            // Past the cap: the rest of what this batch planned as deleted.
            try await listDeleted(saga, c.prior)
        }
        try await finishCompensation(of: saga)
        return true
    }

    /// Lists the saga's documents in its record, deletes exactly those and emits the record.
    /// A document written after the listing is left to its writer, whose re-check suppresses it:
    /// so every deleted document is listed, and the event names every one.
    func finishCompensation(of saga: String) async throws {
        let store = store
        let found = try await store.eachKind { kind in try await store.historyIDs(of: saga, kind: kind) }
        try await listDeleted(saga, found)
        try await faults.beforeDeletingHistory?(saga)
        for (kind, ids) in zip(store.kinds.all, found) { try await store.deleteHistory(ids: ids, of: kind, saga: saga) }
        guard let record = try await store.compensationRecord(of: saga) else {
            throw MongoError.invalid(message: "compensation record of \(saga) vanished")
        }
        try await emit(record)
    }

    /// - Parameter ids: per kind, by index in the table.
    private func listDeleted(_ saga: String, _ ids: [[String]]) async throws {
        for (kind, ids) in zip(store.kinds.all, ids) { try await store.list(ids, in: .deleted(kind), of: saga) }
    }

    /// Ids listed per collection in the event; the record in `compensations` always has them all.
    static let maxIdsPerEvent = 1_000

    /// The event id is derived from the saga, so a re-emission after a crash is recognisably the same event.
    private func emit(_ record: CompensationRecord) async throws {
        // Ids are at most 256 bytes (see CloudEvent): with at most 1,000 of each of the contract's two
        // kinds, the event stays under the broker's 1 MB; a saga with more says so, and the record lists them all.
        let truncated =
            record.deleted.contains { $0.count > Self.maxIdsPerEvent } || record.deletedCount > record.deleted.reduce(0) { $0 + $1.count }
        var deleted = JSONObject()
        for (kind, ids) in zip(store.kinds.all, record.deleted) {
            deleted[kind.collection] = .array(ids.prefix(Self.maxIdsPerEvent).map { .string($0) })
        }
        var data: JSONObject = ["sagaId": .string(record.sagaId), "reason": .string(record.reason), "deleted": .object(deleted)]
        if truncated { data["deletedTruncated"] = .bool(true) }
        // The compensation is a hop of the failed saga's trace, whichever failure event led here:
        // created in the failure's span when it is this process's (exporting), else a new span
        // id in the record's trace.
        let trace =
            Telemetry.messageContext(topic: compensationTopic, parent: TraceParent.current)
            ?? record.traceId.map { TraceParent.span(in: $0, flags: 0x01) }
        let event = OutgoingEvent(
            id: "history-deleted-\(record.sagaId)", source: "/archive/archiver", type: EventType.historyDeleted,
            subject: "saga/\(record.sagaId)", timeMs: Timestamp.nowMs(), sagaId: record.sagaId, data: data, traceParent: trace)
        _ = try await producer.send(
            KafkaRecord(
                topic: compensationTopic, key: Array(record.sagaId.utf8), value: event.bytes,
                headers: trace.map { [KafkaHeader("traceparent", $0.text)] } ?? []))
    }
}
