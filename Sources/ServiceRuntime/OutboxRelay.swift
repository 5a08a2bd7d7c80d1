import Events
import Foundation
import Kafka
import Logging
import SQLStore

/// Publishes a node's outbox in commit order with the idempotent producer, deleting rows
/// only once the broker has acknowledged them (in batches, see `deleteInterval`). A crash
/// between the two re-sends them on restart; consumers drop the duplicates by event id.
///
/// Up to `maxInFlight` batches are handed to the producer before the first is acknowledged:
/// a row committed while a batch waits for the broker goes out at once instead of after that
/// wait (tens of ms per saga hop on a busy broker). librdkafka's idempotent producer keeps them
/// in order. If a batch fails (the broker unreachable until the message timeout), the relay
/// waits for the batches after it and sends again the rows that were not acknowledged (an
/// acknowledged row is never sent again by this process), so they may arrive after later
/// rows: in these sagas a later event of one aggregate is always caused by an earlier one that
/// was already delivered, so none overtakes its cause.
///
/// On a store shared by several processes of the service, one relay leads (`SQLStore.tryLead`)
/// and the others wait to take over. Appends take no lock, so rows can commit out of seq order:
/// the leader reads past the last seq it sent only up to the first gap that a transaction still
/// running may fill, and moves past a gap once every transaction that could hold it has ended
/// (`Gap`). A new leader (or a
/// restart after a crash) starts from the rows not deleted yet, less those it finds already on
/// their topics (`OutboxTakeover`): a leader that dies between the broker's acknowledgement and
/// the delete publishes nothing twice.
///
/// A row the broker refuses for itself (too large) can never be published: it is set aside in
/// `rejected_events` (partition -1, offset = -seq), logged, and the outbox moves on.
final class OutboxRelay: Sendable {
    let node: ServiceNode
    let producer: KafkaProducer
    /// For the read of what a predecessor published, and how long it may take.
    let connection: KafkaConfiguration
    let readTimeout: Duration
    let logger: Logger
    let batchSize = 500
    static let maxInFlight = 4

    init(node: ServiceNode, producer: KafkaProducer, connection: KafkaConfiguration, readTimeout: Duration, logger: Logger) {
        self.node = node
        self.producer = producer
        self.connection = connection
        self.readTimeout = readTimeout
        self.logger = logger
    }

    /// A row of the outbox as the relay sends it.
    struct Row: Sendable {
        var seq: Int64
        var record: KafkaRecord
        var type: String
    }

    /// Published rows are deleted in one transaction at most this often (or when the relay has
    /// nothing else to do), not after every send: the delete waited for the service's single
    /// writer on every saga hop. Rows published but not deleted yet are skipped by `seq`; a
    /// restart publishes them again, and consumers drop the duplicates by event id.
    static let deleteInterval: Duration = .milliseconds(500)

    private enum Event: Sendable {
        case wake
        case sent(batch: Int, [Result<DeliveryReport, KafkaError>])
        case stopping
    }

    /// What this relay has handed over, published and deleted.
    struct Progress {
        /// The last seq handed to the producer.
        var sent: Int64 = 0
        /// The last seq the broker acknowledged (or refused for good), with every row before it.
        var published: Int64 = 0
        /// Rows after `published` acknowledged while an earlier one failed: not sent again.
        var doneAhead: Set<Int64> = []
        /// Refused rows not yet set aside in rejected_events.
        var refused: [(seq: Int64, record: KafkaRecord, error: KafkaError)] = []
        /// Per partition, the offset after the last row acknowledged there, and what
        /// outbox_offsets holds (see `deletePublished`).
        var acknowledged: [TopicPartition: Int64] = [:]
        var recorded: [TopicPartition: Int64] = [:]
        /// Rows up to this seq are deleted.
        var deleted: Int64 = 0
        var lastDelete = ContinuousClock.now
        /// Batches handed over and not yet settled, oldest first: id, the seqs sent, and the last
        /// seq read (skipped rows included).
        var inFlight: [(batch: Int, rows: [Row], last: Int64)] = []
        /// Outcomes that came in ahead of an older batch's.
        var outcomes: [Int: [Result<DeliveryReport, KafkaError>]] = [:]
        /// A batch failed: nothing new is handed over until every batch in flight has settled.
        var failure: KafkaError?
        /// The first gap in the seqs that may still be filled, if the last read stopped at one, and
        /// since when the relay has been stopped at gaps (reset by a read that passes them all).
        var gap: Gap?
        var stoppedSince: ContinuousClock.Instant?
        var warnedOfStop = false
        /// Whether the outbox may hold rows not read yet: false once a read came back short with no
        /// gap, true again at the next wake-up (a commit) or failure. A batch's acknowledgement alone
        /// does not read again: that read found nothing, half of all reads.
        var mayHaveMore = true
        /// Nothing is sent until the topics are read for rows already there (`look`): at the
        /// start of a leadership, and after a failed batch (a send that timed out may still
        /// have been stored).
        var mustLook = true
        var failedLooks = 0
    }

    /// Publishes on every wake-up until the node finishes the wake-up stream, then once more.
    /// A broker that does not take the rows is waited for (they stay in the outbox); anything
    /// else (the database failing, a fatal producer error) ends the relay with that error.
    func run(stopping: @escaping @Sendable () -> Bool) async throws {
        let (events, sink) = AsyncStream.makeStream(of: Event.self)
        let wakeups = Task { [node] in
            for await _ in node.relayWakeups { sink.yield(.wake) }
            sink.yield(.stopping)
        }
        defer { wakeups.cancel() }
        var stream = events.makeAsyncIterator()
        // Batch ids stay unique across leaderships: a batch sent before a lost lease may settle after.
        var nextBatch = 0
        while true {
            do {
                guard let lease = try await awaitLeadership(&stream) else { return }
                node.metrics.leads(true)
                let finished: Bool
                do { finished = try await publish(while: lease, &stream, sink, &nextBatch, stopping: stopping) } catch {
                    node.metrics.leads(false)
                    await lease.release()
                    throw error
                }
                node.metrics.leads(false)
                await lease.release()
                if finished { return }
                logger.warning("outbox relay lost its leadership; waiting to lead again", metadata: ["service": "\(node.name)"])
            } catch let error as SQLError where error.isTransient {
                // A shared database restarting: the rows wait in the outbox, and so does the relay.
                if stopping() { return }
                logger.warning("database unreachable; the outbox waits for it", metadata: ["service": "\(node.name)", "error": "\(error)"])
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }

    /// How often a waiting relay asks for the lead.
    static let leadershipRetry: Duration = .milliseconds(500)

    /// The lease once this relay leads; nil if the node stops first (the leader publishes).
    private func awaitLeadership(_ stream: inout AsyncStream<Event>.Iterator) async throws -> (any SQLLease)? {
        var lastAttempt: ContinuousClock.Instant?
        while true {
            if lastAttempt.map({ ContinuousClock.now - $0 >= Self.leadershipRetry }) ?? true {
                lastAttempt = .now
                if let lease = try await node.database.tryLead("outbox relay") { return lease }
            }
            switch await stream.next() {
            case .stopping?, nil: return nil
            case .wake?, .sent?: continue
            }
        }
    }

    /// Publishes while `lease` is held; true when the node stopped (after the final pass).
    private func publish(
        while lease: any SQLLease, _ stream: inout AsyncStream<Event>.Iterator, _ sink: AsyncStream<Event>.Continuation,
        _ nextBatch: inout Int, stopping: @escaping @Sendable () -> Bool
    ) async throws -> Bool {
        var progress = Progress()
        var finishing = false
        while let event = await stream.next() {
            guard lease.isHeld else { return false }
            switch event {
            case .wake: progress.mayHaveMore = true
            case .stopping: finishing = true
            case .sent(let batch, let results): progress.outcomes[batch] = results
            }
            try settle(&progress)
            if !progress.refused.isEmpty { try await deletePublished(&progress) }
            if progress.inFlight.isEmpty, let failure = progress.failure {
                progress.failure = nil
                progress.sent = progress.published
                progress.mustLook = true
                progress.mayHaveMore = true
                logger.warning(
                    "outbox not published yet; it stays until the broker takes it", metadata: ["service": "\(node.name)", "error": "\(failure)"])
                // Stopping must not wait for the broker: what stays is published by the next process.
                if finishing || stopping() { return true }
                try? await Task.sleep(for: .milliseconds(500))
            }
            if finishing {
                if progress.inFlight.isEmpty { break }
                continue
            }
            if progress.failure == nil, progress.mustLook { try await look(&progress) }
            if progress.failure == nil, !progress.mustLook, progress.mayHaveMore {
                try await handOver(&progress, &nextBatch, sink, while: lease)
            }
            // The periodic wake-up comes here too, so an idle relay deletes as well.
            if ContinuousClock.now - progress.lastDelete >= Self.deleteInterval { try await deletePublished(&progress) }
        }
        // The final pass: what was committed until now, one batch at a time, without waiting for
        // an absent broker, and without sending blind (what stays is the next process's).
        let finalPassEnd = ContinuousClock.now + .seconds(2)
        if progress.mustLook { try await look(&progress) }
        while !progress.mustLook {
            let (rows, last, _) = try await unpublished(&progress)
            guard let last else {
                guard progress.gap != nil, ContinuousClock.now < finalPassEnd else { break }
                try? await Task.sleep(for: Self.gapRecheck)
                continue
            }
            guard lease.isHeld else { break }
            let failure = Self.account(rows, await producer.sendEach(rows.map(\.record)), last: last, &progress, node.metrics)
            if let failure {
                if failure.isFatal { throw failure }
                logger.warning(
                    "outbox not published yet; it stays until the broker takes it", metadata: ["service": "\(node.name)", "error": "\(failure)"])
                break
            }
            progress.sent = last
        }
        try await deletePublished(&progress)
        return true
    }

    /// Tries this often to read what is already on the topics before sending without the check
    /// (and logging so): a read that can never finish (a partition without a leader, a topic
    /// read from its first message that is too long to read in `OutboxTakeover.readTimeout`)
    /// must not stop publishing for good. Consumers drop what goes out twice by event id.
    static let lookAttempts = 3

    /// Reads which rows left in the outbox are already on their topics (`OutboxTakeover`) and
    /// skips them; `mustLook` stays set while the broker cannot tell.
    private func look(_ progress: inout Progress) async throws {
        do {
            let found = try await OutboxTakeover.find(node: node, connection: connection, timeout: readTimeout, logger: logger)
            progress.doneAhead.formUnion(found.published.filter { $0 > progress.published })
            progress.acknowledged.merge(found.nextOffsets) { max($0, $1) }
            progress.mustLook = false
            progress.failedLooks = 0
        } catch let error as KafkaError where !error.isFatal {
            progress.failedLooks += 1
            guard progress.failedLooks >= Self.lookAttempts else {
                logger.warning(
                    "cannot read what the outbox already published; trying again", metadata: ["service": "\(node.name)", "error": "\(error)"])
                return
            }
            logger.error(
                "cannot read what the outbox already published; sending without the check (events already sent go out twice)",
                metadata: ["service": "\(node.name)", "attempts": "\(progress.failedLooks)", "error": "\(error)"])
            progress.mustLook = false
            progress.failedLooks = 0
        }
    }

    /// Takes the settled batches off the front of `inFlight`, in order.
    private func settle(_ progress: inout Progress) throws {
        while let oldest = progress.inFlight.first, let results = progress.outcomes.removeValue(forKey: oldest.batch) {
            progress.inFlight.removeFirst()
            if let failure = Self.account(oldest.rows, results, last: oldest.last, &progress, node.metrics) {
                if failure.isFatal { throw failure }
                progress.failure = progress.failure ?? failure
            }
            if let afterPublish = node.testFaults.afterPublish {
                afterPublish(zip(oldest.rows, results).filter { (try? $0.1.get()) != nil }.map(\.0.type))
            }
        }
    }

    /// Books one settled batch: acknowledged and refused rows are done; `published` moves to
    /// `last` when every row of the batch is done and no earlier batch failed. Returns the
    /// batch's first failure other than a refusal.
    private static func account(
        _ rows: [Row], _ results: [Result<DeliveryReport, KafkaError>], last: Int64, _ progress: inout Progress, _ metrics: ServiceMetrics
    ) -> KafkaError? {
        var failure: KafkaError?
        var done: [Int64] = []
        var acknowledged: [String] = []
        defer { metrics.produced(acknowledged) }
        for (row, result) in zip(rows, results) {
            switch result {
            case .success(let report):
                done.append(row.seq)
                acknowledged.append(row.type)
                let partition = TopicPartition(topic: report.topic, partition: report.partition)
                progress.acknowledged[partition] = max(progress.acknowledged[partition] ?? 0, report.offset + 1)
            case .failure(let error) where error.isRecordRefused:
                done.append(row.seq)
                progress.refused.append((row.seq, row.record, error))
            case .failure(let error): failure = failure ?? error
            }
        }
        if failure == nil, progress.failure == nil {
            progress.published = last
            progress.doneAhead = progress.doneAhead.filter { $0 > last }
        } else {
            progress.doneAhead.formUnion(done)
        }
        return failure
    }

    /// Hands the rows committed since the last batch to the producer, up to `maxInFlight` batches.
    private func handOver(
        _ progress: inout Progress, _ nextBatch: inout Int, _ sink: AsyncStream<Event>.Continuation, while lease: any SQLLease
    ) async throws {
        while progress.inFlight.count < Self.maxInFlight {
            let (rows, last, full) = try await unpublished(&progress)
            if progress.gap != nil {
                // The transaction holding the gap commits (and wakes the relay) or rolls back (and
                // does not): look again shortly either way, less often the longer it lasts.
                let since = progress.stoppedSince ?? .now
                progress.stoppedSince = since
                let waited = ContinuousClock.now - since
                if waited > Self.gapWarning, !progress.warnedOfStop {
                    progress.warnedOfStop = true
                    // The oldest running transaction is the server's, of every database: one left open
                    // anywhere (a psql session, another application) holds every relay here.
                    logger.warning(
                        "outbox waits for a transaction still running on the PostgreSQL server (pg_stat_activity: oldest backend_xid)",
                        metadata: ["service": "\(node.name)", "waited": "\(waited)"])
                }
                Task { [sink] in
                    try? await Task.sleep(for: min(.seconds(1), max(Self.gapRecheck, waited / 4)))
                    sink.yield(.wake)
                }
            } else {
                progress.stoppedSince = nil
                progress.warnedOfStop = false
            }
            // Checked again after the read: a leader frozen during it may have been succeeded.
            guard let last, lease.isHeld else {
                if progress.gap == nil { progress.mayHaveMore = false }
                return
            }
            let batch = nextBatch
            nextBatch += 1
            progress.inFlight.append((batch, rows, last))
            progress.sent = last
            // Enqueued here, in order, not in the task: batches enqueued from concurrent tasks could
            // interleave on a partition (events of one key out of order, and an offset recorded
            // past a row still to be acknowledged).
            let deliveries = producer.enqueueEach(rows.map(\.record))
            Task { sink.yield(.sent(batch: batch, await deliveries.outcomes())) }
            if !full {
                if progress.gap == nil { progress.mayHaveMore = false }
                return
            }
        }
    }

    /// A gap in the seqs a read saw: every seq below `before` that the read did not see
    /// belongs to a transaction numbered below `next` (`SQLStore.newTransactionNumber`, taken
    /// after the read), so once the oldest running transaction is numbered `next` or more, such
    /// a seq is committed and visible, or will never be.
    struct Gap: Equatable {
        var before: Int64
        var next: UInt64
    }

    /// How soon a relay stopped at a gap looks again (at first; a quarter of the wait so far
    /// later, a second at most), and after how long it says so.
    static let gapRecheck: Duration = .milliseconds(5)
    static let gapWarning: Duration = .seconds(10)

    /// Up to `batchSize` rows after `progress.sent` but those in `doneAhead`, up to the first gap
    /// that may still be filled, the last seq they reach (nil: nothing new to send), and whether
    /// the read was cut at `batchSize` (more may follow at once).
    private func unpublished(_ progress: inout Progress) async throws -> ([Row], Int64?, full: Bool) {
        let read = { [node, batchSize, sent = progress.sent] in
            try await node.database.read { db in
                try db.rows("SELECT seq, topic, key, value, type, traceparent FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?", sent, batchSize)
                    .map { row in
                        let value: Data = try row["value"], key: String = try row["key"], trace: String? = try row["traceparent"]
                        // The context the row was written with, as the contract's optional header.
                        let headers = trace.map { [KafkaHeader("traceparent", $0)] } ?? []
                        return Row(
                            seq: try row["seq"],
                            record: KafkaRecord(topic: try row["topic"], key: Array(key.utf8), value: Array(value), headers: headers),
                            type: try row["type"])
                    }
            }
        }
        var rows = try await read()
        // At a gap: the oldest running transaction, then the rows again. In that order: a gap
        // may count as settled only by a horizon read before the rows were (the rows then show
        // whatever the transaction holding it committed). One statement per read otherwise.
        var horizon: UInt64?
        if zip(rows, [progress.sent] + rows.map(\.seq)).contains(where: { $0.seq != $1 + 1 }) {
            horizon = try await node.database.read { db in try db.oldestRunningTransaction() }
            if horizon != nil { rows = try await read() }
        }
        var taken: [Row] = []
        var expected = progress.sent + 1
        for row in rows {
            if row.seq != expected, let oldestRunning = horizon {
                if let gap = progress.gap, expected < gap.before, oldestRunning >= gap.next {
                    progress.gap = nil  // settled: what was missing is gone for good
                } else {
                    if progress.gap.map({ expected >= $0.before }) ?? true, let next = try await node.database.newTransactionNumber() {
                        progress.gap = Gap(before: row.seq, next: next)
                    }
                    break
                }
            }
            taken.append(row)
            expected = row.seq + 1
            if let gap = progress.gap, expected >= gap.before { progress.gap = nil }  // filled meanwhile
        }
        let skipping = progress.doneAhead
        return (skipping.isEmpty ? taken : taken.filter { !skipping.contains($0.seq) }, taken.last?.seq, rows.count == batchSize)
    }

    /// Deletes the rows published so far and sets aside the refused ones. With them it records,
    /// per partition, the offset after the last row acknowledged there, once no row is
    /// acknowledged out of order (`doneAhead` empty, no failed batch waiting): every row still
    /// in the outbox is then either unsent or sent after that one, so at or after that offset,
    /// which is where the next leader starts to look. An offset written earlier stays a valid
    /// (looser) bound, so skipping a record loses nothing.
    private func deletePublished(_ progress: inout Progress) async throws {
        progress.lastDelete = .now
        guard progress.published > progress.deleted || !progress.refused.isEmpty else { return }
        let refused = progress.refused
        let offsets =
            progress.doneAhead.isEmpty && progress.failure == nil
            ? progress.acknowledged.filter { progress.recorded[$0.key] != $0.value } : [:]
        try await node.database.write { [published = progress.published] db in
            try OutboxTakeover.record(offsets, db)
            let now = Timestamp.nowMs()
            for (seq, record, error) in refused {
                try RejectedEvents.keep(
                    topic: record.topic, partition: -1, offset: -seq, key: record.key.map { String(decoding: $0, as: UTF8.self) },
                    value: Data(record.value), reason: "outgoing event refused by the broker: \(error.message)", at: now, db)
            }
            try db.execute("DELETE FROM outbox WHERE seq <= ?", published)
        }
        progress.refused = []
        progress.deleted = progress.published
        progress.recorded.merge(offsets) { $1 }
        for (seq, record, error) in refused {
            logger.error(
                "outgoing event refused by the broker; kept in rejected_events",
                metadata: [
                    "service": "\(node.name)", "topic": "\(record.topic)", "seq": "\(seq)", "bytes": "\(record.value.count)",
                    "error": "\(error.message)",
                ])
        }
    }
}
