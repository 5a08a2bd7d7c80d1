import Events
import Foundation
import Kafka
import Logging
import Mongo

/// Counts of what a batch did, for logs, the replay summary and tests.
public struct BatchOutcome: Sendable, Equatable {
    public var archived = 0
    public var compensated = 0
    public var suppressed = 0
    public var ignored = 0
    public var deadLettered = 0
    public var duplicateFailures = 0

    public static func += (l: inout BatchOutcome, r: BatchOutcome) {
        l.archived += r.archived
        l.compensated += r.compensated
        l.suppressed += r.suppressed
        l.ignored += r.ignored
        l.deadLettered += r.deadLettered
        l.duplicateFailures += r.duplicateFailures
    }
}

/// Carries out a `BatchPlan` against MongoDB and Kafka. Every step is idempotent, so a step
/// retried after an outage, or a batch redelivered after a crash, has no second effect.
struct BatchExecutor: Sendable {
    var store: HistoryStore
    var producer: KafkaProducer
    var retrier: Retrier
    var metrics: ArchiverMetrics
    var logger: Logger
    var deadLetterTopic: String
    var compensationTopic: String

    /// How a message of the batch is described in a dead letter: its origin and attempt number.
    typealias DeadLetterInfo = @Sendable (Inbound) -> (origin: Origin, attempts: Int)

    static let runDeadLetterInfo: DeadLetterInfo = { inbound in (inbound.origin, 1) }

    func execute(_ batch: [Inbound], deadLetterInfo: DeadLetterInfo = BatchExecutor.runDeadLetterInfo) async throws -> BatchOutcome {
        let known = try await retrier.run("mongo read compensations") {
            try await store.compensationRecords(for: BatchPlanner.sagas(in: batch))
        }
        var plan = BatchPlanner.plan(batch, known: known, archivedAtMs: Self.nowMs())
        var outcome = BatchOutcome(ignored: plan.ignored.count)

        let started = ContinuousClock.now
        let rejected = try await retrier.run("mongo write history") { try await writeHistory(plan) }
        metrics.write(seconds: (ContinuousClock.now - started).seconds)
        plan.deadLetters += rejected
        let rejectedIndexes = Set(rejected.map(\.inboundIndex))
        let writtenBalance = plan.balanceWrites.filter { !rejectedIndexes.contains($0.inboundIndex) }
        let writtenPayment = plan.paymentWrites.filter { !rejectedIndexes.contains($0.inboundIndex) }

        let raced = try await retrier.run("mongo recheck compensations") {
            try await undoWritesOfCompensatedSagas(writtenBalance, writtenPayment)
        }
        plan.suppressions += raced
        outcome.archived = writtenBalance.count + writtenPayment.count - raced.count
        // Writes taken back because they raced a compensation count as suppressed, not archived.
        let undone = Set(raced.map(\.eventId))
        var archivedTally = ArchiverMetrics.Tally()
        for w in writtenBalance + writtenPayment where !undone.contains(w.eventId) {
            if case .archive(let e) = batch[w.inboundIndex].outcome { archivedTally.add(e.type) }
        }
        metrics.archived(archivedTally)

        for compensation in plan.newCompensations {
            if try await retrier.run("mongo compensate", { try await compensate(compensation) }) {
                outcome.compensated += 1
                metrics.compensated(compensation.failure.type)
            } else {
                outcome.duplicateFailures += 1
            }
        }
        for record in plan.repeatedCompensations {
            try await retrier.run("mongo compensate again") { try await deleteHistory(of: record.sagaId) }
            try await retrier.run("kafka emit compensation") { try await emit(record) }
        }
        outcome.duplicateFailures += plan.duplicateFailures.count
        metrics.duplicateFailures(plan.duplicateFailures.count)

        if !plan.suppressions.isEmpty {
            let models: [WriteModel] = plan.suppressions.map {
                .updateOne(filter: ["_id": .string($0.sagaId)], update: ["$addToSet": .document(["suppressed": .string($0.eventId)])], upsert: false)
            }
            _ = try await retrier.run("mongo record suppressed") { try await store.compensations.bulkWrite(models) }
            outcome.suppressed = plan.suppressions.count
            metrics.suppressed(plan.suppressions.count)
        }

        if !plan.deadLetters.isEmpty {
            let now = Self.nowMs()
            let records = plan.deadLetters.map { letter in
                let inbound = batch[letter.inboundIndex]
                let info = deadLetterInfo(inbound)
                return DeadLetter.record(topic: deadLetterTopic, value: inbound.message.value, key: inbound.message.key, headers: inbound.message.headers,
                                         origin: info.origin, kind: letter.kind, reason: letter.message,
                                         attempts: info.attempts, failedAtMs: now)
            }
            _ = try await retrier.run("kafka dead-letter") { try await producer.send(records) }
            for letter in plan.deadLetters {
                metrics.deadLettered(kind: letter.kind)
                logger.warning("dead-lettered", metadata: ["kind": "\(letter.kind)", "reason": "\(letter.message)",
                                                           "origin": "\(deadLetterInfo(batch[letter.inboundIndex]).origin)"])
            }
            outcome.deadLettered = plan.deadLetters.count
        }
        metrics.ignored(plan.ignored.count)
        return outcome
    }

    /// Upserts both collections at once. Returns the items MongoDB refused for good (to dead-letter);
    /// throws to retry everything when any refusal is transient.
    private func writeHistory(_ plan: BatchPlan) async throws -> [(inboundIndex: Int, kind: String, message: String)] {
        // One after the other: measured 5-8% faster than both at once on the Mongo-wire server,
        // which serializes writes anyway; concurrent bulks only made each other wait.
        let balance = try await upsert(plan.balanceWrites, into: store.balance)
        return try await balance + upsert(plan.paymentWrites, into: store.payment)
    }

    private func upsert(_ writes: [HistoryWrite], into collection: MongoCollection, isRetry: Bool = false) async throws -> [(inboundIndex: Int, kind: String, message: String)] {
        do {
            _ = try await collection.bulkWrite(writes.map { HistoryDocument.upsert(id: $0.eventId, $0.document) })
            return []
        } catch MongoError.bulkWrite(let failure) {
            if failure.errors.contains(where: { MongoError.transientCodes.contains($0.code) }) {
                throw TransientBulkFailure(description: "bulk write to \(collection.name): transient item failure(s): \(failure.errors.count)")
            }
            // A duplicate key is either a concurrent upsert of the same event (gone on a retry, which
            // finds the document) or another unique index refusing it (still there on the retry).
            let duplicates = failure.errors.filter { $0.code == 11000 }.map { writes[$0.index] }
            let refused = failure.errors.filter { $0.code != 11000 || isRetry }
            let stillRefused = duplicates.isEmpty || isRetry ? [] : try await upsert(duplicates, into: collection, isRetry: true)
            return refused.map { (writes[$0.index].inboundIndex, "rejected", "MongoDB refused the document: \($0.code) \($0.message)") } + stillRefused
        }
    }

    /// Another instance may have compensated a saga between this batch's check and its write:
    /// such writes are taken back and recorded as suppressed.
    private func undoWritesOfCompensatedSagas(_ balance: [HistoryWrite], _ payment: [HistoryWrite]) async throws -> [(sagaId: String, eventId: String)] {
        let records = try await store.compensationRecords(for: Set(balance.map(\.sagaId)).union(payment.map(\.sagaId)))
        guard !records.isEmpty else { return [] }
        var undone: [(sagaId: String, eventId: String)] = []
        for (writes, collection) in [(balance, store.balance), (payment, store.payment)] {
            let late = writes.filter { records[$0.sagaId] != nil }
            guard !late.isEmpty else { continue }
            _ = try await collection.deleteMany(["_id": .document(["$in": .array(late.map { .string($0.eventId) })])])
            undone += late.map { ($0.sagaId, $0.eventId) }
        }
        return undone
    }

    /// Records the compensation (first, so a crash half-way is finished by the redelivery),
    /// deletes the saga's history and emits `archive.history.deleted`. Returns false when the
    /// saga had already been compensated by a different failure event.
    private func compensate(_ c: NewCompensation) async throws -> Bool {
        let saga = c.failure.sagaId
        async let foundBalance = store.historyIDs(of: saga, in: store.balance)
        async let foundPayment = store.historyIDs(of: saga, in: store.payment)
        var record = CompensationRecord(sagaId: saga, failedEvent: c.failure.eventId, reason: c.failure.reason,
                                        deletedBalance: Self.unique(try await foundBalance + c.priorBalance),
                                        deletedPayment: Self.unique(try await foundPayment + c.priorPayment))
        let document: Document = [
            "reason": .string(record.reason), "failedEvent": .string(record.failedEvent), "failedType": .string(c.failure.type),
            "deleted": .document([HistoryStore.balanceCollection: .array(record.deletedBalance.map { .string($0) }),
                                  HistoryStore.paymentCollection: .array(record.deletedPayment.map { .string($0) })]),
            "suppressed": .array([]), "compensatedAt": .datetime(Self.nowMs()),
        ]
        let result = try await store.compensations.updateOne(filter: ["_id": .string(saga)], update: ["$setOnInsert": .document(document)], upsert: true)
        if result.upserted == 0 {
            guard let existing = try await store.compensations.findOne(["_id": .string(saga)]).flatMap(CompensationRecord.init),
                  existing.failedEvent == c.failure.eventId else { return false }
            record = existing
        }
        try await deleteHistory(of: saga)
        try await emit(record)
        return true
    }

    private func deleteHistory(of saga: String) async throws {
        async let b = store.balance.deleteMany(["sagaId": .string(saga)])
        async let p = store.payment.deleteMany(["sagaId": .string(saga)])
        _ = try await (b, p)
    }

    /// The event id is derived from the saga, so a re-emission after a crash is recognisably the same event.
    private func emit(_ record: CompensationRecord) async throws {
        let event = OutgoingEvent(
            id: "history-deleted-\(record.sagaId)", source: "/archive/archiver", type: EventType.historyDeleted,
            subject: "saga/\(record.sagaId)", timeMs: Self.nowMs(), sagaId: record.sagaId,
            data: ["sagaId": .string(record.sagaId), "reason": .string(record.reason),
                   "deleted": .object([HistoryStore.balanceCollection: .array(record.deletedBalance.map { .string($0) }),
                                       HistoryStore.paymentCollection: .array(record.deletedPayment.map { .string($0) })])])
        _ = try await producer.send(KafkaRecord(topic: compensationTopic, key: Array(record.sagaId.utf8), value: event.bytes))
    }

    private static func unique(_ ids: [String]) -> [String] {
        var seen = Set<String>()
        return ids.filter { seen.insert($0).inserted }
    }

    static func nowMs() -> Int64 { Int64((Date().timeIntervalSince1970 * 1000).rounded()) }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
