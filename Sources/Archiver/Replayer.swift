import Events
import Foundation
import Kafka
import Logging
import Mongo
import Prometheus

/// `archiver replay`: re-archives dead letters through the same planner and executor as `run`.
///
/// It reads `archive.dlq` in its own consumer group, so a replay can be stopped and resumed.
/// Per partition it commits only the unbroken run of letters it dealt with: a letter left out
/// by a filter stays ahead of the group's offset, visible to a later replay.
public struct Replayer: Sendable {
    public struct Filter: Sendable {
        public var eventID: String?
        public var sinceMs: Int64?
        public var untilMs: Int64?
        public var limit: Int?
        public init(eventID: String? = nil, sinceMs: Int64? = nil, untilMs: Int64? = nil, limit: Int? = nil) {
            self.eventID = eventID
            self.sinceMs = sinceMs
            self.untilMs = untilMs
            self.limit = limit
        }
    }

    public struct Summary: Sendable, Equatable, CustomStringConvertible {
        public var archived = 0
        public var failed = 0
        public var skipped = 0
        public var dryRun = false
        public var description: String {
            dryRun
                ? "replay (dry run, nothing written): would archive \(archived), would still fail \(failed), skipped \(skipped)"
                : "replay: archived \(archived), still failing \(failed), skipped \(skipped)"
        }
    }

    var configuration: ArchiverConfiguration
    var logger: Logger

    public init(configuration: ArchiverConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    /// - Parameter idleMs: the replay ends once the dead-letter topic has had nothing new for this long.
    public func run(filter: Filter, dryRun: Bool, idleMs: Int = 3_000) async throws -> Summary {
        let store = try await HistoryStore.connect(uri: configuration.mongoURI, database: configuration.database, kinds: configuration.kinds)
        let producer = try KafkaProducer(configuration: configuration.kafka, logger: logger, renewsWhenFenced: true)
        try await producer.checkConnection()
        var consumerConfig = KafkaConsumerConfiguration(
            connection: configuration.kafka, groupID: configuration.groupID,
            topics: [configuration.deadLetterTopic])
        consumerConfig.sessionTimeoutMs = configuration.sessionTimeoutMs
        consumerConfig.maxPollIntervalMs = configuration.maxPollIntervalMs
        let consumer = try KafkaConsumer(configuration: consumerConfig, logger: logger)
        if !dryRun { try await store.migrate() }
        let metrics = ArchiverMetrics(registry: PrometheusCollectorRegistry(), kinds: configuration.kinds)
        let executor = BatchExecutor(
            store: store, producer: producer,
            retrier: Retrier(
                initialMs: configuration.retryInitialMs, maxMs: configuration.retryMaxMs, logger: logger,
                metrics: metrics, status: ArchiverStatus(), shouldGiveUp: { false },
                outage: .sleep),
            metrics: metrics, logger: logger,
            deadLetterTopic: configuration.deadLetterTopic, compensationTopic: configuration.compensationTopic)

        // Letters that fail again during this replay are dead-lettered anew, after this instant:
        // they are the next replay's business, not this one's.
        let startedMs = Timestamp.nowMs()
        var summary = Summary(dryRun: dryRun)
        var considered = 0
        var lastActivity = ContinuousClock.now
        var joinedAt: ContinuousClock.Instant?
        // Per partition: the next offset to commit, and whether a skipped letter broke the run.
        var commitable: [TopicPartition: Int64] = [:]
        var blocked: Set<TopicPartition> = []

        while true {
            if let limit = filter.limit, considered >= limit { break }
            let batchLimit = filter.limit.map { min(configuration.batchSize, $0 - considered) } ?? configuration.batchSize
            let result = try await consumer.poll(maxMessages: batchLimit, timeout: .milliseconds(200))
            if !consumer.assignment.isEmpty && joinedAt == nil { joinedAt = .now; lastActivity = .now }
            if result.messages.isEmpty {
                if let joinedAt, ContinuousClock.now - max(lastActivity, joinedAt) > .milliseconds(idleMs) { break }
                continue
            }
            lastActivity = .now
            var selected: [Inbound] = []
            var attempts: [Origin: Int] = [:]
            for stored in result.messages {
                let tp = stored.topicPartition
                // A stub stands for a message too large for the broker: replay the whole one, kept in MongoDB.
                guard let message = try await Self.whole(stored, store: store, logger: logger) else {
                    summary.skipped += 1
                    blocked.insert(tp)
                    continue
                }
                let parsed = DeadLetter.parse(message)
                let failedAt = parsed?.failedAtMs
                let isNew = failedAt.map { $0 >= startedMs } ?? false
                let matches = !isNew && Self.matches(message, failedAtMs: failedAt, filter: filter)
                if matches { considered += 1 }
                guard matches, let parsed else {
                    summary.skipped += isNew ? 0 : 1
                    blocked.insert(tp)
                    continue
                }
                if !blocked.contains(tp) { commitable[tp] = message.offset + 1 }
                attempts[parsed.origin] = parsed.attempts < Int.max ? parsed.attempts + 1 : Int.max
                // Back to the message as first consumed: original position, original headers.
                let original = KafkaMessage(
                    topic: parsed.origin.topic, partition: parsed.origin.partition, offset: parsed.origin.offset,
                    key: message.key, value: message.value,
                    headers: DeadLetter.withoutOurHeaders(message.headers),
                    timestampMs: message.timestampMs)
                selected.append(Inbound.decode(original, kinds: store.kinds))
            }
            guard !selected.isEmpty else { continue }
            if dryRun {
                for inbound in selected {
                    if case .deadLetter = inbound.outcome { summary.failed += 1 } else { summary.archived += 1 }
                }
                continue
            }
            let known = attempts
            let outcome = try await executor.execute(selected) { inbound in (inbound.origin, known[inbound.origin] ?? 2) }
            summary.failed += outcome.deadLettered
            summary.archived += selected.count - outcome.deadLettered
            try await consumer.commit(commitable)
        }
        await consumer.close()
        await producer.close()
        return summary
    }

    /// The dead letter with its whole original key, value and headers; nil when a stub's kept
    /// message is missing (it stays in the topic, ahead of the group's offset).
    static func whole(_ message: KafkaMessage, store: HistoryStore, logger: Logger) async throws -> KafkaMessage? {
        guard let ref = message.header(DeadLetterHeader.payloadRef)?.stringValue else { return message }
        guard let kept = try await store.keptDeadLetter(ref) else {
            logger.error("dead-letter stub without its kept message in MongoDB: skipped", metadata: ["payloadRef": "\(ref)"])
            return nil
        }
        let ours = message.headers.filter { DeadLetter.ourHeaders.contains($0.name) }
        return KafkaMessage(
            topic: message.topic, partition: message.partition, offset: message.offset, key: kept.key, value: kept.value,
            headers: kept.headers + ours, timestampMs: message.timestampMs)
    }

    static func matches(_ message: KafkaMessage, failedAtMs: Int64?, filter: Filter) -> Bool {
        if let since = filter.sinceMs, (failedAtMs ?? .min) < since { return false }
        if let until = filter.untilMs, (failedAtMs ?? .max) >= until { return false }
        if let wanted = filter.eventID {
            guard let event = try? CloudEvent.decode(message.value), event.id == wanted else { return false }
        }
        return true
    }
}
