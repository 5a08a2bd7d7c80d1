import Events
import Foundation
import Kafka
import Logging
import Mongo
import Prometheus
import ServiceLifecycle

/// `archiver run`: consume, archive, compensate, dead-letter, commit; batch after batch.
///
/// One event, from poll to commit: `poll` → `Inbound.decode` → `BatchPlanner.plan` →
/// `BatchExecutor.write` (inserts, compensations, suppressions) → the next poll → one lookup
/// that plans the next batch and re-checks this one → `settle` (writes that raced a
/// compensation taken back, dead letters) → `commit`, in the background, ahead of the poll
/// after. So a rebalance served by the poll between a batch's writes and its commit can revoke a
/// partition with work done but not committed (as can one served while an outage is waited
/// out): its new owner redoes that work, every write is idempotent, and this instance leaves the
/// partition's dead letters to it and commits only what it still owns.
public final class Archiver: Service, Sendable {
    public let status = ArchiverStatus()
    private let config: ArchiverConfiguration
    private let consumer: KafkaConsumer
    private let producer: KafkaProducer
    private let store: HistoryStore
    private let logger: Logger
    private let metrics: ArchiverMetrics
    private let watermarks: KafkaWatermarkProbe
    private let loop = Locked(LoopState())
    /// Tests' disturbances, handed to each batch's executor (none in production).
    let faults = Locked(ArchiverFaults())

    private struct LoopState {
        var stopRequestedAt: ContinuousClock.Instant?
        /// Messages that arrived while waiting out an outage: they go first into the next batch.
        var carryOver: [KafkaMessage] = [] {
            didSet { carriedOverHighWater = max(carriedOverHighWater, carryOver.count) }
        }
        /// The most messages ever carried over at once: bounded by one batch.
        var carriedOverHighWater = 0
        /// Partitions are paused while an outage is waited out, and resumed when the retried call
        /// that met it ends (`endOutage`), whichever call that was.
        var pausedForOutage = false
        /// High watermarks the probe read from the broker for paused partitions, and when.
        var probedHighs: [TopicPartition: Int64] = [:]
        var lastWatermarkProbe: ContinuousClock.Instant?
        /// Where paused partitions with no settled position yet start: their last commit (or the
        /// start of the partition), read once per assignment.
        var pausedStarts: [TopicPartition: Int64] = [:]
        /// This loop marked Kafka unreachable after librdkafka said every broker was down.
        var brokersDownReported = false
        var lastProbe = ContinuousClock.now
        /// Next offset to read, per partition: settled work, committed in the background, and the lag gauge.
        var positions: [TopicPartition: Int64] = [:]
        /// How often each partition was revoked: a batch whose partition was revoked after its poll
        /// (even if assigned back since, which fetches again from the last commit) is redone.
        var revocations: [TopicPartition: Int] = [:]
        var totals = BatchOutcome()
    }

    /// Connects to both servers (failing fast with a named error when one is unreachable) and migrates.
    /// - Parameter registry: where its series go; `/metrics` serves the same registry.
    public init(
        configuration: ArchiverConfiguration, logger: Logger, registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()
    ) async throws {
        config = configuration
        self.logger = logger
        metrics = ArchiverMetrics(registry: registry, kinds: configuration.kinds)
        store = try await HistoryStore.connect(uri: configuration.mongoURI, database: configuration.database, kinds: configuration.kinds)
        try await store.migrate()
        producer = try KafkaProducer(configuration: configuration.kafka, logger: logger, renewsWhenFenced: true)
        try await producer.checkConnection()
        var consumerConfig = KafkaConsumerConfiguration(connection: configuration.kafka, groupID: configuration.groupID, topics: configuration.topics)
        consumerConfig.sessionTimeoutMs = configuration.sessionTimeoutMs
        consumerConfig.maxPollIntervalMs = configuration.maxPollIntervalMs
        consumer = try KafkaConsumer(configuration: consumerConfig, logger: logger)
        watermarks = try KafkaWatermarkProbe(connection: configuration.kafka, logger: logger)
        status.setReachable(mongo: true, kafka: true)
    }

    /// The most messages this instance ever held while waiting out an outage.
    var carriedOverHighWater: Int { loop.withLock { $0.carriedOverHighWater } }

    /// What all batches so far did.
    public var totals: BatchOutcome { loop.withLock { $0.totals } }

    public func run() async throws {
        logger.info("archiver started", metadata: ["group": "\(config.groupID)", "topics": "\(config.topics)", "batch": "\(config.batchSize)"])
        do {
            // Cancellation (a sibling service failed) is treated like SIGTERM: finish the batch,
            // commit, leave the group.
            try await withTaskCancellationHandler {
                try await withGracefulShutdownHandler {
                    var unsettled: Unsettled?
                    while !stopRequested { unsettled = try await runOneBatch(after: unsettled) }
                    if let unsettled { try await settle(unsettled, raced: try await executor.recheck(unsettled.written)) }
                    try await commit(loop.withLock { $0.positions })
                } onGracefulShutdown: { [loop] in
                    loop.withLock { $0.stopRequestedAt = .now }
                }
            } onCancel: { [loop] in
                loop.withLock { $0.stopRequestedAt = .now }
            }
        } catch is Retrier.Abandoned {
            logger.warning("stopped with a batch uncommitted: a server was unreachable; it will be redelivered")
        }
        await consumer.close()
        await producer.close()
        logger.info("archiver stopped", metadata: ["totals": "\(totals)"])
    }

    /// Asks the loop to finish its batch, commit and stop (what SIGTERM does through ServiceLifecycle).
    public func stop() { loop.withLock { $0.stopRequestedAt = .now } }

    private var stopRequested: Bool { loop.withLock { $0.stopRequestedAt != nil } }

    /// A written batch, waiting for its re-check and commit.
    private struct Unsettled {
        var written: WrittenBatch
        /// `LoopState.revocations` when the batch was polled.
        var revocationsAtPoll: [TopicPartition: Int]
    }

    /// Polls and writes one batch, settling the one before it on the way; returns the batch
    /// written, unsettled (nil when none came).
    private func runOneBatch(after previous: Unsettled?) async throws -> Unsettled? {
        // Only after a resume that failed: no retried call is waiting here.
        if loop.withLock({ $0.pausedForOutage }) { await endOutage() }
        let carried = loop.withLock { s in
            defer { s.carryOver = [] }
            return s.carryOver
        }
        // With a batch to settle, only what is already fetched is taken: it is settled at once otherwise.
        let waitMs = carried.isEmpty && previous == nil ? config.pollTimeoutMs : 0
        let polled = ContinuousClock.now
        let result = try await consumer.poll(maxMessages: max(1, config.batchSize - carried.count), timeout: .milliseconds(waitMs))
        let revoked = handle(result.rebalances)
        // After the poll: what it revoked is fetched again from the last commit, so carried
        // messages and those it returned before a revocation are dropped; the rest belong to the
        // assignment now in force, and a later revocation makes this batch's work on it a redo.
        let revocationsAtPoll = loop.withLock { $0.revocations }
        await checkBrokers()
        let assignment = consumer.assignment
        let messages = carried.filter { assignment.contains($0.topicPartition) && !revoked.contains($0.topicPartition) } + result.current
        guard !messages.isEmpty else {
            if let previous { try await settle(previous, raced: try await executor.recheck(previous.written)) }
            await updateLag()
            return nil
        }

        var timeline = BatchTimeline(start: polled)
        timeline.mark(.poll)
        let kinds = store.kinds
        let batch = messages.map { Inbound.decode($0, kinds: kinds) }
        var consumed = metrics.tally()
        for inbound in batch {
            switch inbound.outcome {
            case .archive(let e): consumed.add(e)
            case .ignore: consumed.addOther()
            case .deadLetter: consumed.addUnknown()
            }
        }
        metrics.consumed(consumed)
        metrics.batch(size: batch.count)
        let executor = executor
        timeline.mark(.decode)
        let (plan, raced) = try await executor.plan(batch, recheck: previous?.written)
        timeline.mark(.lookup)
        if let previous { try await settle(previous, raced: raced) }
        timeline.mark(.settle)
        let written = try await executor.write(plan, to: batch)
        timeline.mark(.write)
        logger.debug("batch timeline", metadata: timeline.metadata(events: batch.count))
        return Unsettled(written: written, revocationsAtPoll: revocationsAtPoll)
    }

    /// Re-checked: takes back the raced writes, dead-letters, then commits in the background
    /// everything settled so far (a failed commit is covered by the next).
    /// A partition revoked since the batch's poll is left to whoever redoes it from the last
    /// commit (this instance too, if it was assigned back): its dead letters and offsets are not
    /// this batch's to produce or commit.
    private func settle(_ unsettled: Unsettled, raced: [Suppression]) async throws {
        let stillOurs: @Sendable (TopicPartition) -> Bool = { [consumer, loop] tp in
            consumer.assignment.contains(tp) && loop.withLock { $0.revocations[tp] } == unsettled.revocationsAtPoll[tp]
        }
        var executor = executor
        executor.owns = stillOurs
        let outcome = try await executor.settle(unsettled.written, raced: raced)
        var next: [TopicPartition: Int64] = [:]
        let batch = unsettled.written.batch
        // By index: a copy of each `Inbound` would retain and release its message's buffers.
        for index in batch.indices where stillOurs(batch[index].message.topicPartition) {
            let tp = batch[index].message.topicPartition
            next[tp] = max(next[tp] ?? 0, batch[index].message.offset + 1)
        }
        let positions = loop.withLock { s in
            s.totals += outcome
            s.positions.merge(next) { max($0, $1) }
            return s.positions
        }
        consumer.commitOwnedInBackground(positions) { [logger] error in
            logger.warning("commit failed; the next batch's commit covers it", metadata: ["error": "\(error)"])
        }
        logger.info(
            "batch",
            metadata: [
                "events": "\(batch.count)", "archived": "\(outcome.archived)", "compensated": "\(outcome.compensated)",
                "suppressed": "\(outcome.suppressed)", "deadLettered": "\(outcome.deadLettered)", "ignored": "\(outcome.ignored)",
            ])
        await updateLag()
    }

    private var executor: BatchExecutor {
        var executor = BatchExecutor(
            store: store, producer: producer, retrier: retrier, metrics: metrics, logger: logger,
            deadLetterTopic: config.deadLetterTopic, compensationTopic: config.compensationTopic)
        executor.owns = { [consumer] in consumer.assignment.contains($0) }
        executor.faults = faults.withLock { $0 }
        return executor
    }

    var retrier: Retrier {
        let grace = Duration.milliseconds(config.shutdownGraceMs)
        return Retrier(
            initialMs: config.retryInitialMs, maxMs: config.retryMaxMs, logger: logger, metrics: metrics, status: status,
            shouldGiveUp: { [loop] in loop.withLock { $0.stopRequestedAt.map { .now - $0 > grace } ?? false } },
            outage: Retrier.Outage(wait: { [self] in await waitPaused($0) }, end: { [self] in await endOutage() }))
    }

    /// Commits these offsets (the next to read, per partition) where the partition is still
    /// ours, owned being decided at each attempt: a retry after a rebalance never moves a new
    /// owner's offsets back. Waits for the broker's answer: the last commit before leaving.
    private func commit(_ next: [TopicPartition: Int64]) async throws {
        do {
            try await retrier.run("kafka commit") { try await consumer.commitOwned(next) }
        } catch let error as KafkaError where error.isRebalance {
            // The partitions moved on; their new owner starts from the last commit and redoes the (idempotent) work.
            logger.info("commit skipped after a rebalance", metadata: ["error": "\(error)"])
        }
    }

    /// Waits out an outage with every partition paused (and any assigned meanwhile), still polling
    /// so the group keeps this member. What polls still hand over is carried into the next batch,
    /// at most one batch of it: the rest is sought back and fetched again after the outage.
    private func waitPaused(_ delay: Duration) async {
        let deadline = ContinuousClock.now + delay
        status.setOutageInProgress(true)
        do {
            consumer.setPauseNewAssignments(true)
            loop.withLock { $0.pausedForOutage = true }
            try await consumer.pause(Array(consumer.assignment))
            while ContinuousClock.now < deadline {
                let result = try await consumer.poll(maxMessages: config.batchSize, timeout: .milliseconds(100))
                handle(result.rebalances)
                await checkBrokers()
                await updateLag()
                // A revoked partition is fetched again from its last commit: what came before the revocation is not kept.
                let fresh = result.current
                guard !fresh.isEmpty else { continue }
                let room = loop.withLock { max(0, config.batchSize - $0.carryOver.count) }
                // Only what is sought back may be dropped: if the seek fails, everything is kept
                // (more memory, never a gap the next commit would skip).
                let kept =
                    (try? await consumer.seek(Self.firstOffsets(of: fresh.dropFirst(room)))) != nil
                    ? fresh.prefix(room) : fresh[...]
                loop.withLock { $0.carryOver += kept }
            }
        } catch {
            try? await Task.sleep(until: deadline)
        }
    }

    /// Ends what `waitPaused` began: every partition fetches again, and so does every partition
    /// assigned from now on. Called once by the retrier when the call that met the outage ends,
    /// whichever call it was. A resume that fails leaves `pausedForOutage` set and the outage
    /// ended: /readyz shows a stall, and the next batch tries the resume again.
    private func endOutage() async {
        guard loop.withLock({ $0.pausedForOutage }) else { return status.setOutageInProgress(false) }
        consumer.setPauseNewAssignments(false)
        do {
            try await consumer.resume(Array(consumer.assignment))
            loop.withLock { $0.pausedForOutage = false }
            status.setPartitions(assigned: consumer.assignment.count, paused: consumer.pausedPartitions.count)
        } catch {
            // Shown as a stall (/readyz 503, the paused gauge); the next batch tries again.
            logger.error("could not resume the partitions paused for an outage", metadata: ["error": "\(error)"])
        }
        status.setOutageInProgress(false)
        await updateLag()
    }

    /// Per partition, the offset of its first message here: where fetching must start again.
    static func firstOffsets(of messages: ArraySlice<KafkaMessage>) -> [TopicPartition: Int64] {
        var first: [TopicPartition: Int64] = [:]
        for m in messages where first[m.topicPartition] == nil { first[m.topicPartition] = m.offset }
        return first
    }

    /// Readiness follows librdkafka's "all brokers down" even when no operation is failing (an idle
    /// archiver); a metadata probe, at most once a second, notices the brokers coming back.
    private func checkBrokers() async {
        // The loop's own view: was Kafka reported down by this check, and is a probe due?
        enum Step { case fine, recovered, down(probe: Bool) }
        let down = consumer.brokersDown
        let step: Step = loop.withLock { s in
            guard down else {
                defer { s.brokersDownReported = false }
                return s.brokersDownReported ? .recovered : .fine
            }
            let probe = ContinuousClock.now - s.lastProbe > .seconds(1)
            if probe { s.lastProbe = .now }
            return .down(probe: probe)
        }
        switch step {
        case .fine:
            return
        case .recovered:
            status.setReachable(kafka: true)
        case .down(let probe):
            if !loop.withLock({ s in
                defer { s.brokersDownReported = true }; return s.brokersDownReported
            }) {
                logger.warning("no Kafka broker reachable")
            }
            status.setReachable(kafka: false)
            // Reached again: the next check sees brokersDown cleared and reports the recovery.
            if probe { _ = await consumer.probe() }
        }
    }

    /// Returns the partitions revoked in these rebalances.
    @discardableResult
    private func handle(_ rebalances: [RebalanceEvent]) -> Set<TopicPartition> {
        guard !rebalances.isEmpty else { return [] }
        let owned = consumer.assignment
        status.setAssigned(owned.count)
        metrics.forgetLag(except: owned)
        var revoked = Set<TopicPartition>()
        for case .revoked(let partitions) in rebalances { revoked.formUnion(partitions) }
        loop.withLock { s in
            for tp in revoked { s.revocations[tp, default: 0] += 1 }
            // Assigned back or not, a revoked partition is fetched again from its last commit.
            s.carryOver.removeAll { !owned.contains($0.topicPartition) || revoked.contains($0.topicPartition) }
            s.positions = s.positions.filter { owned.contains($0.key) && !revoked.contains($0.key) }
        }
        return revoked
    }

    /// Lag per partition from the broker's high watermark: the consumer's cached one for
    /// partitions it fetches, the probe's for paused ones (their cache is frozen), at most
    /// every `watermarkProbeInterval`. Also publishes assigned and paused partitions to
    /// readiness and the gauges.
    private func updateLag() async {
        let paused = consumer.pausedPartitions
        // A paused partition with nothing settled here yet (quiet so far, or taken over during
        // an outage) counts from its last commit.
        let unknown = loop.withLock { s in paused.filter { s.positions[$0] == nil && s.pausedStarts[$0] == nil } }
        if !unknown.isEmpty, let committed = try? await consumer.committed(Array(unknown), timeoutMs: 1_000) {
            loop.withLock { s in
                for tp in unknown where consumer.assignment.contains(tp) { s.pausedStarts[tp] = (committed[tp] ?? nil) ?? 0 }
            }
        }
        let (positions, probe) = loop.withLock { s -> ([TopicPartition: Int64], [TopicPartition: Int64]?) in
            s.probedHighs = s.probedHighs.filter { paused.contains($0.key) }
            s.pausedStarts = s.pausedStarts.filter { paused.contains($0.key) && s.positions[$0.key] == nil }
            let positions = s.positions.merging(s.pausedStarts) { settled, _ in settled }
            let due = !paused.isEmpty && s.lastWatermarkProbe.map { .now - $0 >= Self.watermarkProbeInterval } != false
            guard due else { return (positions, nil) }
            s.lastWatermarkProbe = .now
            // From the end read last time, or the position: never past the end.
            var starts: [TopicPartition: Int64] = [:]
            for tp in paused { if let position = positions[tp] { starts[tp] = max(position, s.probedHighs[tp] ?? 0) } }
            return (positions, starts)
        }
        if let probe, !probe.isEmpty {
            let highs = await watermarks.highWatermarks(from: probe, timeout: .seconds(1))
            loop.withLock { $0.probedHighs.merge(highs) { max($0, $1) } }
        }
        let probed = loop.withLock { $0.probedHighs }
        for (tp, position) in positions {
            let high = max(consumer.highWatermark(tp) ?? -1, probed[tp] ?? -1)
            if high >= 0 { metrics.lag(tp, max(0, high - position)) }
        }
        // The gauge before the status: a reader of both sees the status no older than the gauge.
        metrics.paused(paused.count)
        status.setPartitions(assigned: consumer.assignment.count, paused: paused.count)
        metrics.ready(status.snapshot.ready)
    }

    /// How often paused partitions' watermarks are read from the broker.
    static let watermarkProbeInterval = Duration.seconds(2)
}

public enum ArchiverError: Error, CustomStringConvertible {
    case unreachable(String)

    public var description: String {
        switch self {
        case .unreachable(let what): "cannot reach \(what)"
        }
    }
}
