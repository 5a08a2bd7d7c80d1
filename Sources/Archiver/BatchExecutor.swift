import Events
import Foundation
import Kafka
import Logging
import Mongo
import Telemetry
import Tracing

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

/// A batch whose history is written and whose re-check, dead letters and commit are still to
/// come. Another instance may have compensated one of its sagas between the batch's lookup and
/// its writes: the next lookup (the next batch's, or one of its own) finds such records.
struct WrittenBatch: Sendable {
    var kinds: HistoryKinds
    var batch: [Inbound]
    /// History written (refusals taken out), every kind.
    var written: [HistoryWrite]
    var deadLetters: [(inboundIndex: Int, kind: String, message: String)]
    /// Everything but what `settle` decides: archived, and writes taken back.
    var outcome: BatchOutcome

    var sagas: Set<String> { BatchPlanner.sagas(in: [], andOf: written) }

    /// The writes whose saga has a compensation record among `records`: none had one at the
    /// batch's own lookup (the planner writes nothing for those), so each raced it.
    func raced(_ records: [String: CompensationRecord]) -> [Suppression] {
        guard !records.isEmpty else { return [] }
        return written.filter { records[$0.sagaId] != nil }.map { w in
            Suppression(sagaId: w.sagaId, eventId: w.eventId, kind: kinds.all[w.event.kind])
        }
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

    /// Whether this instance still owns the partition a message came from (nil: always, for replay).
    /// Polls during an outage can revoke a partition mid-batch; its new owner redoes the batch, so
    /// its dead letters are left to that owner rather than produced twice.
    var owns: (@Sendable (TopicPartition) -> Bool)?

    /// Tests' disturbances (none in production).
    var faults = ArchiverFaults()

    /// Plans, writes, re-checks and settles one batch on its own (replay, tests). `archiver run`
    /// calls the steps itself, so that a batch's re-check rides on the next batch's lookup.
    func execute(_ batch: [Inbound], deadLetterInfo: DeadLetterInfo = BatchExecutor.runDeadLetterInfo) async throws -> BatchOutcome {
        try await apply(try await plan(batch).plan, to: batch, deadLetterInfo: deadLetterInfo)
    }

    func apply(_ plan: BatchPlan, to batch: [Inbound], deadLetterInfo: DeadLetterInfo = BatchExecutor.runDeadLetterInfo) async throws -> BatchOutcome
    {
        let written = try await write(plan, to: batch)
        return try await settle(written, raced: try await recheck(written), deadLetterInfo: deadLetterInfo)
    }

    /// Looks up the batch's sagas and works out what the batch must do, writing nothing. The same
    /// query re-checks `previous`: its writes whose saga has a record now raced a compensation.
    func plan(_ batch: [Inbound], recheck previous: WrittenBatch? = nil) async throws -> (plan: BatchPlan, raced: [Suppression]) {
        let sagas = BatchPlanner.sagas(in: batch, andOf: previous?.written ?? [])
        let known = try await retrier.run("mongo read compensations") { try await store.compensationRecords(for: sagas) }
        return (BatchPlanner.plan(batch, known: known, kinds: store.kinds), previous.map { $0.raced(known) } ?? [])
    }

    /// The re-check of a written batch on its own, when no next batch came to carry it.
    func recheck(_ written: WrittenBatch) async throws -> [Suppression] {
        let sagas = written.sagas
        guard !sagas.isEmpty else { return [] }
        return written.raced(try await retrier.run("mongo recheck compensations") { try await store.compensationRecords(for: sagas) })
    }

    /// Writes the history, then carries out the batch's compensations and suppressions. What may
    /// still change its outcome (a compensation racing the writes) is for `settle`.
    func write(_ plan: BatchPlan, to batch: [Inbound]) async throws -> WrittenBatch {
        var outcome = BatchOutcome(ignored: plan.ignored.count)

        try await faults.beforeWritingHistory?(plan)
        let started = ContinuousClock.now
        let spanStart = Telemetry.isExporting ? DefaultTracerClock.now : nil
        let rejected = try await retrier.run("mongo write history") { try await writeHistory(plan) }
        metrics.write(seconds: (ContinuousClock.now - started).seconds)
        if let spanStart {
            let refused = Set(rejected.map(\.inboundIndex))
            for writes in plan.writes { recordWriteSpans(writes, of: batch, rejected: refused, from: spanStart) }
        }
        let writtenAtMs = Timestamp.nowMs()
        // Each collection's writes in place: joining them copied every write (and retained its strings) twice a batch.
        for writes in plan.writes {
            for w in writes {
                if let produced = batch[w.inboundIndex].message.timestampMs {
                    let (latency, overflow) = writtenAtMs.subtractingReportingOverflow(produced)
                    if !overflow { metrics.eventLatency(ms: latency) }
                }
            }
        }
        var written: [HistoryWrite] = []
        written.reserveCapacity(plan.writes.reduce(0) { $0 + $1.count })
        for writes in plan.writes { written.append(contentsOf: writes) }
        if !rejected.isEmpty {
            let rejectedIndexes = Set(rejected.map(\.inboundIndex))
            written.removeAll { rejectedIndexes.contains($0.inboundIndex) }
        }

        for compensation in plan.newCompensations {
            let compensated = try await inCompensationSpan(of: compensation.failure, at: compensation.inboundIndex, in: batch) {
                try await retrier.run("mongo compensate") { try await compensate(compensation) }
            }
            if compensated {
                outcome.compensated += 1
                metrics.compensated(compensation.failure.type)
            } else {
                outcome.duplicateFailures += 1
            }
        }
        for repeated in plan.repeatedCompensations {
            try await inCompensationSpan(of: repeated.failure, at: repeated.inboundIndex, in: batch) {
                try await retrier.run("mongo compensate again") { try await finishCompensation(of: repeated.sagaId) }
            }
        }
        outcome.duplicateFailures += plan.duplicateFailures.count
        metrics.duplicateFailures(plan.duplicateFailures.count)

        if !plan.suppressions.isEmpty {
            try await retrier.run("mongo suppress") { try await suppress(plan.suppressions) }
            outcome.suppressed = plan.suppressions.count
            metrics.suppressed(plan.suppressions.count)
        }
        metrics.ignored(plan.ignored.count)
        return WrittenBatch(kinds: plan.kinds, batch: batch, written: written, deadLetters: plan.deadLetters + rejected, outcome: outcome)
    }

    /// Finishes a written batch: takes back the writes that raced a compensation, counts what
    /// stays archived, and dead-letters. After this the batch's offsets may be committed.
    func settle(
        _ written: WrittenBatch, raced: [Suppression], deadLetterInfo: DeadLetterInfo = BatchExecutor.runDeadLetterInfo
    ) async throws
        -> BatchOutcome
    {
        var outcome = written.outcome
        let batch = written.batch
        if !raced.isEmpty {
            try await retrier.run("mongo suppress") { try await suppress(raced) }
            outcome.suppressed += raced.count
            metrics.suppressed(raced.count)
        }
        outcome.archived = written.written.count - raced.count
        // Writes taken back because they raced a compensation count as suppressed, not archived.
        let undone = Set(raced.map(\.eventId))
        var archivedTally = metrics.tally()
        for w in written.written where undone.isEmpty || !undone.contains(w.eventId) {
            if case .archive(let e) = batch[w.inboundIndex].outcome { archivedTally.add(e) }
        }
        metrics.archived(archivedTally)

        var deadLetters = written.deadLetters
        if let owns { deadLetters.removeAll { !owns(batch[$0.inboundIndex].message.topicPartition) } }
        if !deadLetters.isEmpty {
            let now = Timestamp.nowMs()
            let letters = deadLetters.map { letter in
                let inbound = batch[letter.inboundIndex]
                let info = deadLetterInfo(inbound)
                return DeadLetter(
                    message: inbound.message, origin: info.origin, kind: letter.kind, reason: letter.message,
                    attempts: info.attempts, failedAtMs: now)
            }
            try await deadLetterPublisher.publish(letters, to: deadLetterTopic)
            for letter in letters {
                metrics.deadLettered(kind: letter.kind)
                logger.warning("dead-lettered", metadata: ["kind": "\(letter.kind)", "reason": "\(letter.reason)", "origin": "\(letter.origin)"])
            }
            outcome.deadLettered = deadLetters.count
        }
        return outcome
    }

    private var deadLetterPublisher: DeadLetterPublisher {
        DeadLetterPublisher(producer: producer, store: store, retrier: retrier, metrics: metrics, logger: logger)
    }

    /// Inserts each kind's history, one kind after the other: measured 5-8% faster than both
    /// built-in kinds at once on the Mongo-wire server, which serializes writes anyway; concurrent
    /// bulks only made each other wait.
    private func writeHistory(_ plan: BatchPlan) async throws -> [(inboundIndex: Int, kind: String, message: String)] {
        let archivedAtMs = Timestamp.nowMs()
        var rejected: [(inboundIndex: Int, kind: String, message: String)] = []
        for (index, kind) in plan.kinds.all.enumerated() where !plan.writes[index].isEmpty {
            rejected += try await store.insertHistory(plan.writes[index], of: kind, archivedAtMs: archivedAtMs)
        }
        return rejected
    }

    /// Deletes the suppressed events' documents, if any were written, then lists them in their
    /// sagas' records. Idempotent.
    private func suppress(_ suppressions: [Suppression]) async throws {
        try await store.deleteHistory(suppressions)
        for (saga, ids) in Dictionary(grouping: suppressions, by: \.sagaId) {
            try await store.list(ids.map(\.eventId), in: .suppressed, of: saga)
        }
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
