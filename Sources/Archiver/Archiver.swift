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
/// `BatchExecutor.execute` (inserts, compensations, suppressions, dead letters) → `commit`.
/// The next poll happens only after the commit, and rebalances are served only inside polls, so
/// a partition is revoked with work done but not committed only while an outage is waited out
/// (those waits poll): then its new owner redoes the batch, every write is idempotent, and this
/// instance leaves the partition's dead letters to it and commits only what it still owns.
public final class Archiver: Service, Sendable {
    public let status = ArchiverStatus()
    private let config: ArchiverConfiguration
    private let consumer: KafkaConsumer
    private let producer: KafkaProducer
    private let store: HistoryStore
    private let logger: Logger
    private let metrics: ArchiverMetrics
    private let loop = Locked(LoopState())

    private struct LoopState {
        var stopRequestedAt: ContinuousClock.Instant?
        /// Messages that arrived while waiting out an outage: they go first into the next batch.
        var carryOver: [KafkaMessage] = [] {
            didSet { carriedOverHighWater = max(carriedOverHighWater, carryOver.count) }
        }
        /// The most messages ever carried over at once: bounded by one batch.
        var carriedOverHighWater = 0
        /// Partitions are paused while an outage is waited out, and all resumed after the batch.
        var pausedForOutage = false
        /// This loop marked Kafka unreachable after librdkafka said every broker was down.
        var brokersDownReported = false
        var lastProbe = ContinuousClock.now
        /// Next offset to read, per partition, for the lag gauge.
        var positions: [TopicPartition: Int64] = [:]
        var totals = BatchOutcome()
    }

    /// Connects to both servers (failing fast with a named error when one is unreachable) and migrates.
    /// - Parameter registry: where its series go; `/metrics` serves the same registry.
    public init(
        configuration: ArchiverConfiguration, logger: Logger, registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()
    ) async throws {
        config = configuration
        self.logger = logger
        metrics = ArchiverMetrics(registry: registry)
        store = try await HistoryStore.connect(uri: configuration.mongoURI, database: configuration.database)
        try await store.migrate()
        producer = try KafkaProducer(configuration: configuration.kafka, logger: logger)
        try await producer.checkConnection()
        var consumerConfig = KafkaConsumerConfiguration(connection: configuration.kafka, groupID: configuration.groupID, topics: configuration.topics)
        consumerConfig.sessionTimeoutMs = configuration.sessionTimeoutMs
        consumerConfig.maxPollIntervalMs = configuration.maxPollIntervalMs
        consumer = try KafkaConsumer(configuration: consumerConfig, logger: logger)
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
                    while !stopRequested { try await runOneBatch() }
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

    private func runOneBatch() async throws {
        let carried = loop.withLock { s in
            defer { s.carryOver = [] }
            return s.carryOver
        }
        let result = try await consumer.poll(
            maxMessages: max(1, config.batchSize - carried.count), timeout: .milliseconds(carried.isEmpty ? config.pollTimeoutMs : 0))
        handle(result.rebalances)
        await checkBrokers()
        let assignment = consumer.assignment
        let messages = carried.filter { assignment.contains($0.topicPartition) } + result.messages
        guard !messages.isEmpty else { return updateLag() }

        let batch = messages.map(Inbound.decode)
        var consumed = ArchiverMetrics.Tally()
        for inbound in batch {
            switch inbound.outcome {
            case .archive(let e): consumed.add(e)
            case .ignore: consumed.addOther()
            case .deadLetter: consumed.addUnknown()
            }
        }
        metrics.consumed(consumed)
        metrics.batch(size: batch.count)
        let outcome = try await executor.execute(batch)
        try await commit(messages)
        let wasPaused = loop.withLock { s in
            defer { s.pausedForOutage = false }
            s.totals += outcome
            return s.pausedForOutage
        }
        if wasPaused {
            consumer.setPauseNewAssignments(false)
            try await consumer.resume(Array(consumer.assignment))
        }
        logger.info(
            "batch",
            metadata: [
                "events": "\(batch.count)", "archived": "\(outcome.archived)", "compensated": "\(outcome.compensated)",
                "suppressed": "\(outcome.suppressed)", "deadLettered": "\(outcome.deadLettered)", "ignored": "\(outcome.ignored)",
            ])
        updateLag()
    }

    private var executor: BatchExecutor {
        var executor = BatchExecutor(
            store: store, producer: producer, retrier: retrier, metrics: metrics, logger: logger,
            deadLetterTopic: config.deadLetterTopic, compensationTopic: config.compensationTopic)
        executor.owns = { [consumer] in consumer.assignment.contains($0) }
        return executor
    }

    var retrier: Retrier {
        let grace = Duration.milliseconds(config.shutdownGraceMs)
        return Retrier(
            initialMs: config.retryInitialMs, maxMs: config.retryMaxMs, logger: logger, metrics: metrics, status: status,
            shouldGiveUp: { [loop] in loop.withLock { $0.stopRequestedAt.map { .now - $0 > grace } ?? false } },
            waiter: { [self] in await waitPaused($0) })
    }

    /// Commits the next offset of every partition in the batch that is still ours, owned being
    /// decided at each attempt: a retry after a rebalance never moves a new owner's offsets back.
    private func commit(_ messages: [KafkaMessage]) async throws {
        var next: [TopicPartition: Int64] = [:]
        for m in messages { next[m.topicPartition] = max(next[m.topicPartition] ?? 0, m.offset + 1) }
        do {
            try await retrier.run("kafka commit") { try await consumer.commitOwned(next) }
            let owned = consumer.assignment
            loop.withLock { s in s.positions.merge(next.filter { owned.contains($0.key) }) { max($0, $1) } }
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
        do {
            consumer.setPauseNewAssignments(true)
            try await consumer.pause(Array(consumer.assignment))
            loop.withLock { $0.pausedForOutage = true }
            while ContinuousClock.now < deadline {
                let result = try await consumer.poll(maxMessages: config.batchSize, timeout: .milliseconds(100))
                handle(result.rebalances)
                await checkBrokers()
                metrics.ready(status.snapshot.ready)
                guard !result.messages.isEmpty else { continue }
                let room = loop.withLock { max(0, config.batchSize - $0.carryOver.count) }
                // Only what is sought back may be dropped: if the seek fails, everything is kept
                // (more memory, never a gap the next commit would skip).
                let kept =
                    (try? await consumer.seek(Self.firstOffsets(of: result.messages.dropFirst(room)))) != nil
                    ? result.messages.prefix(room) : result.messages[...]
                loop.withLock { $0.carryOver += kept }
            }
        } catch {
            try? await Task.sleep(until: deadline)
        }
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

    private func handle(_ rebalances: [RebalanceEvent]) {
        guard !rebalances.isEmpty else { return }
        let owned = consumer.assignment
        status.setAssigned(owned.count)
        metrics.forgetLag(except: owned)
        loop.withLock { s in
            s.carryOver.removeAll { !owned.contains($0.topicPartition) }
            s.positions = s.positions.filter { owned.contains($0.key) }
        }
    }

    private func updateLag() {
        let positions = loop.withLock { $0.positions }
        for (tp, position) in positions {
            if let high = consumer.highWatermark(tp) { metrics.lag(tp, max(0, high - position)) }
        }
        status.setAssigned(consumer.assignment.count)
        metrics.ready(status.snapshot.ready)
    }
}

public enum ArchiverError: Error, CustomStringConvertible {
    case unreachable(String)

    public var description: String {
        switch self {
        case .unreachable(let what): "cannot reach \(what)"
        }
    }
}
