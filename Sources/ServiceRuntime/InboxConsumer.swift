import Events
import Foundation
import Kafka
import Logging
import SQLStore
import Telemetry
import Tracing

/// Feeds a node's service the events of its topics, exactly once in effect: each batch is
/// applied in one local transaction that also records every event id in the inbox, so a
/// redelivered event is a no-op; offsets are committed only after that transaction (in the
/// background, every half second, and when stopping).
final class InboxConsumer: Sendable {
    let node: ServiceNode
    let consumer: KafkaConsumer
    let logger: Logger

    init(node: ServiceNode, connection: KafkaConfiguration, groupPrefix: String, logger: Logger) throws {
        self.node = node
        self.logger = logger
        var configuration = KafkaConsumerConfiguration(
            connection: connection, groupID: "\(groupPrefix)\(node.name)",
            topics: node.service.topics.map { node.topicPrefix + $0 })
        configuration.sessionTimeoutMs = 6_000
        // A batch stuck on a database this process cannot reach (a lost network path answers
        // nothing, for ever) keeps the consumer from polling: after this long it leaves the
        // group, and its partitions go to a replica that can apply them. A batch takes
        // milliseconds; one that really takes this long costs a rebalance, never an event.
        configuration.maxPollIntervalMs = Self.maxBatchTimeMs
        consumer = try KafkaConsumer(configuration: configuration, logger: logger)
    }

    /// How long a batch may keep the consumer from polling before it gives its partitions up.
    static let maxBatchTimeMs = 10_000

    /// How often applied offsets are committed, in the background. A commit per batch cost the
    /// broker more than the batch (hundreds a second under load); what a crash leaves
    /// uncommitted is redelivered and dropped by the inbox.
    static let commitInterval: Duration = .milliseconds(500)

    /// Consumes until `stopped`. A fatal poll error or a failed transaction (the database is
    /// broken: a DomainError never gets here) ends it with that error, after leaving the group.
    func run(until stopped: @escaping @Sendable () -> Bool) async throws {
        defer { logger.debug("consumer stopped", metadata: ["service": "\(node.name)"]) }
        var applied = Applied()
        do {
            while !stopped() { try await consumeOnce(&applied, until: stopped) }
        } catch {
            await consumer.close()
            throw error
        }
        // Stopping: what was applied is committed before leaving the group.
        do { try await consumer.commit(applied.offsets) } catch {
            logger.warning("offset commit failed; the last events may be redelivered", metadata: ["service": "\(node.name)", "error": "\(error)"])
        }
        await consumer.close()
    }

    /// Offsets applied (in the inbox) and not committed yet.
    struct Applied {
        var offsets: [TopicPartition: Int64] = [:]
        var lastCommit = ContinuousClock.now
    }

    /// One poll; a batch is applied in one transaction; its offsets are committed with the next
    /// background commit.
    private func consumeOnce(_ applied: inout Applied, until stopped: @escaping @Sendable () -> Bool) async throws {
        let messages: [KafkaMessage]
        do {
            messages = try await consumer.poll(maxMessages: 200, timeout: .milliseconds(200)).messages
        } catch let error as KafkaError where !error.isFatal {
            logger.warning("poll failed, retrying", metadata: ["service": "\(node.name)", "error": "\(error)"])
            try? await Task.sleep(for: .seconds(1))
            return
        }
        if !messages.isEmpty {
            let service = node.service
            // Decoded and sorted out before the transaction: a batch of events this service does not
            // act on (about half of what its topics carry) needs no transaction at all.
            let work = Self.relevant(messages, to: service)
            if !work.isEmpty {
                let started = ContinuousClock.now
                let emitted = try await applyRetryingTransientFailures(work, until: stopped)
                node.metrics.applied(in: .now - started)
                node.metrics.consumed(work.lazy.map(\.typeLabel))
                node.committed(emitted)
            }
            for m in messages { applied.offsets[m.topicPartition] = max(applied.offsets[m.topicPartition] ?? 0, m.offset + 1) }
        }
        // In the background: the next poll does not wait for the broker. A commit that fails is
        // harmless: what was applied is in the inbox, so a redelivery does nothing.
        if !applied.offsets.isEmpty, ContinuousClock.now - applied.lastCommit >= Self.commitInterval {
            consumer.commitInBackground(applied.offsets)
            applied.offsets = [:]
            applied.lastCommit = .now
        }
    }

    /// Applies a batch in one transaction. A store that is unreachable for a while (a shared
    /// database restarting) is waited for, the batch applied again: the inbox makes that safe
    /// even if the lost attempt had committed. Any other failure is the service's end.
    private func applyRetryingTransientFailures(_ work: [Work], until stopped: @escaping @Sendable () -> Bool) async throws -> [CommerceEvent] {
        let service = node.service
        while true {
            let pending = Telemetry.isExporting ? PendingSpans() : nil
            do {
                let emitted = try await node.database.write { [node, logger] db in
                    pending?.beginAttempt()
                    return try Self.apply(work, service: service, node: node, db: db, logger: logger, pending: pending)
                }
                pending?.commit()
                return emitted
            } catch let error as SQLError where error.isTransient && !stopped() {
                pending?.rollBack()
                logger.warning("database unreachable, retrying the batch", metadata: ["service": "\(node.name)", "error": "\(error)"])
                try await Task.sleep(for: .seconds(1))
            } catch {
                pending?.rollBack()
                throw error
            }
        }
    }

    /// A consumed message as the transaction sees it.
    enum Work {
        case event(CommerceEvent, KafkaMessage)
        /// Not a commerce event: kept in `rejected_events` with the reason.
        case malformed(KafkaMessage, String)

        var typeLabel: String {
            switch self {
            case .event(let event, _): ServiceMetrics.typeLabel(event.type)
            case .malformed: "malformed"
            }
        }
    }

    /// The messages that change something: events of the types the service handles, and
    /// malformed messages (kept as rejected). A type the service does not act on changes
    /// nothing, so it needs neither the transaction nor an inbox row.
    static func relevant(_ messages: [KafkaMessage], to service: any DomainService) -> [Work] {
        messages.compactMap { message in
            let event: CommerceEvent
            do { event = try CommerceEvent.decode(message.value) } catch { return .malformed(message, "not a commerce event: \(error)") }
            if let handled = service.handledTypes, !handled.contains(event.type) { return nil }
            return .event(event, message)
        }
    }

    /// Applies a batch; returns the events it wrote to the outbox. Each event is claimed in the
    /// inbox first (a copy being applied by another process waits for that one to end, then is
    /// skipped); on a shared store the claimed events' aggregates are then locked, all at once
    /// and in one order, before any row is (`DomainService.lockKeys`).
    static func apply(
        _ work: [Work], service: any DomainService, node: ServiceNode, db: any SQLDatabase, logger: Logger, pending: PendingSpans? = nil
    ) throws -> [CommerceEvent] {
        var emitted: [CommerceEvent] = []
        let now = Timestamp.nowMs()
        var events: [(CommerceEvent, KafkaMessage)] = []
        var seen = Set<String>()
        for item in work {
            switch item {
            case .malformed(let bad, let reason): try reject(bad, because: reason, db: db, now: now, logger: logger)
            case .event(let event, let message) where seen.insert(event.id).inserted: events.append((event, message))
            case .event: continue  // a second copy in the same batch
            }
        }
        // Claimed in id order (two processes holding copies of the same events after a rebalance
        // then wait for each other in one order, never in a cycle), applied in offset order.
        var new = Set<String>()
        for (event, _) in events.sorted(by: { $0.0.id < $1.0.id }) {
            let claim = try db.rows(
                "INSERT INTO inbox (event_id, type, processed_at) VALUES (?, ?, ?) ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
                event.id, event.type, now)
            if !claim.isEmpty { new.insert(event.id) }
        }
        let claimed = events.filter { new.contains($0.0.id) }
        if node.database.isShared {
            try db.lock(try claimed.flatMap { event, _ in try service.lockKeys(for: event, in: db) })
        }
        for (event, message) in claimed {
            do {
                try db.savepoint {
                    // Each event this one causes is the next hop of its trace.
                    let out = try Self.traced(event, message, node: node, pending: pending) { hop in
                        try service.handle(event, in: db, node: node).map { $0.hop(of: hop, topicPrefix: node.topicPrefix, pending: pending) }
                    }
                    try Outbox.append(out, prefix: node.topicPrefix, db)
                    emitted += out
                }
            } catch let error as DomainError {
                // An event this service cannot apply: kept with its reason, never dropped silently.
                try reject(message, because: "\(event.type) \(event.id): \(error)", db: db, now: now, logger: logger)
            }
        }
        return emitted
    }

    /// Handles an event in its consumer span ("process TOPIC", OpenTelemetry messaging
    /// conventions) when an exporter is on; the span ends with the batch's transaction. A
    /// handler that answers an ordinary event with a failure event is the saga's failing step:
    /// its span's status says so. Handling a failure event is a compensation: its span says that.
    private static func traced(
        _ event: CommerceEvent, _ message: KafkaMessage, node: ServiceNode, pending: PendingSpans?,
        _ handle: (TraceParent?) throws -> [CommerceEvent]
    ) throws -> [CommerceEvent] {
        let parent = event.traceparent.flatMap(TraceParent.init)
        guard Telemetry.isExporting, let pending else { return try handle(parent) }
        let span = Telemetry.start(
            "process \(message.topic)", kind: .consumer, parent: parent,
            attributes: Telemetry.processAttributes(
                topic: message.topic, partition: message.partition, offset: message.offset, eventId: event.id, eventType: event.type,
                service: node.name))
        pending.add(span)  // ended with the transaction
        do {
            let out = try handle(Telemetry.traceParent(of: span) ?? parent)
            if EventType.isFailure(event.type) {
                span.attributes[Telemetry.Attribute.compensating] = true
            } else if let failure = out.first(where: { EventType.isFailure($0.type) }) {
                span.setStatus(SpanStatus(code: .error, message: "saga step failed: \(failure.type)"))
            }
            return out
        } catch {
            span.recordError(error)
            span.setStatus(SpanStatus(code: .error, message: "\(error)"))
            throw error
        }
    }

    private static func reject(_ message: KafkaMessage, because reason: String, db: any SQLDatabase, now: Int64, logger: Logger) throws {
        logger.error(
            "event rejected",
            metadata: ["topic": "\(message.topic)", "partition": "\(message.partition)", "offset": "\(message.offset)", "reason": "\(reason)"])
        try RejectedEvents.keep(
            topic: message.topic, partition: Int64(message.partition), offset: message.offset, key: message.keyString,
            value: Data(message.value), reason: reason, at: now, db)
    }
}

/// An event that names something impossible (missing fields, unknown ids): a bug upstream,
/// not a business failure. It is recorded in `rejected_events` and the consumer moves on.
public struct DomainError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
