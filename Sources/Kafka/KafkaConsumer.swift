import Foundation
import Logging
import Synchronization

/// A consumer in a group, with manual commits of exact offsets. Every librdkafka call runs
/// on one dedicated serial queue: blocking C calls never run on Swift's cooperative pool.
public final class KafkaConsumer: Sendable {
    private let client: RDKafkaClient
    private let queue: DispatchQueue
    private let brokers: String
    private let state = Locked(State())
    private let logger: Logger

    private struct State {
        var assignment: Set<TopicPartition> = []
        var pendingRebalances: [RebalanceEvent] = []
        var closed = false
        /// librdkafka keeps a partition's pause flag across revoke and re-assign, so every
        /// assignment is set explicitly: paused when this says so, fetching otherwise.
        var pauseNewAssignments = false
        /// Assigned partitions this consumer does not fetch.
        var paused: Set<TopicPartition> = []
        var brokersDown = false
    }

    public init(configuration: KafkaConsumerConfiguration, logger: Logger = Logger(label: "kafka.consumer")) throws {
        self.logger = logger
        brokers = configuration.connection.brokers
        queue = DispatchQueue(label: "kafka-consumer-\(configuration.groupID)")
        client = try RDKafkaClient.groupConsumer(settings: configuration.settings, logger: logger)
        client.context.onRebalance = { [state] event in
            state.withLock { s in
                s.pendingRebalances.append(event)
                switch event {
                case .assigned(let list):
                    s.assignment.formUnion(list)
                    if s.pauseNewAssignments { s.paused.formUnion(list) } else { s.paused.subtract(list) }
                    return s.pauseNewAssignments
                case .revoked(let list):
                    s.assignment.subtract(list)
                    s.paused.subtract(list)
                    return false
                }
            }
        }
        // Generic errors come through the error callback, served inside polls.
        client.context.onError = { [state] code in
            if code == RDKafkaErrorCode.allBrokersDown { state.withLock { $0.brokersDown = true } }
        }
        client.redirectPollsToConsumer()
        // No topics: a handle for the group's committed offsets only, which never joins the group.
        guard !configuration.topics.isEmpty else { return }
        try client.subscribe(configuration.topics)
    }

    deinit {
        let closed = state.withLock { $0.closed }
        if !closed { client.closeConsumer() }
    }

    /// Fails fast, within `timeoutMs`, when no broker answers.
    public func checkConnection(timeoutMs: Int32 = 5_000) async throws {
        try await run { [client, brokers] in try client.checkConnection(brokers: brokers, timeoutMs: timeoutMs) }
    }

    public var assignment: Set<TopicPartition> { state.withLock { $0.assignment } }

    /// The assigned partitions that are paused (by `pause`, or assigned while new assignments pause).
    public var pausedPartitions: Set<TopicPartition> { state.withLock { $0.paused.intersection($0.assignment) } }

    /// Whether partitions assigned from now on start paused (while the caller waits out an
    /// outage) or fetching. Either way, no partition keeps a pause flag from an earlier assignment.
    public func setPauseNewAssignments(_ paused: Bool) { state.withLock { $0.pauseNewAssignments = paused } }

    /// True after librdkafka reported every broker down, until a message arrives or `probe` reaches one.
    public var brokersDown: Bool { state.withLock { $0.brokersDown } }

    /// A metadata round trip; clears `brokersDown` when a broker answers.
    public func probe(timeoutMs: Int32 = 1_000) async -> Bool {
        let reached = (try? await checkConnection(timeoutMs: timeoutMs)) != nil
        if reached { state.withLock { $0.brokersDown = false } }
        return reached
    }

    /// Waits up to `timeout` for a first message, then takes whatever else is already
    /// fetched, up to `maxMessages`: big batches under load, no added latency when idle.
    public func poll(maxMessages: Int, timeout: Duration) async throws -> PollResult {
        let timeoutMs = timeout.rdKafkaMilliseconds
        return try await run { [self] in try pollBlocking(maxMessages: maxMessages, timeoutMs: timeoutMs) }
    }

    private func pollBlocking(maxMessages: Int, timeoutMs: Int32) throws -> PollResult {
        var messages: [KafkaMessage] = []
        messages.reserveCapacity(min(maxMessages, 1024))
        var topicNames = TopicNames()
        var wait = timeoutMs
        var revokedAt: [TopicPartition: Int] = [:]
        var rebalancesSeen = state.withLock { $0.pendingRebalances.count }
        while messages.count < maxMessages {
            let event = client.consumerPoll(timeoutMs: wait, topicNames: &topicNames)
            // Rebalance callbacks run inside that call, before the message it returns.
            state.withLock { s in
                for case .revoked(let partitions) in s.pendingRebalances[rebalancesSeen...] {
                    for p in partitions { revokedAt[p] = messages.count }
                }
                rebalancesSeen = s.pendingRebalances.count
            }
            guard let event else { break }
            wait = 0
            switch event {
            case .message(let message): messages.append(message)
            case .error(let error): try handlePollError(error)
            }
        }
        let rebalances = state.withLock { s in
            defer { s.pendingRebalances.removeAll() }
            if !messages.isEmpty { s.brokersDown = false }
            return s.pendingRebalances
        }
        return PollResult(messages: messages, rebalances: rebalances, revokedAt: revokedAt)
    }

    private func handlePollError(_ error: RDKafkaPollError) throws {
        if error.code == RDKafkaErrorCode.fatal { throw client.fatalKafkaError(operation: "poll") }
        // Transport and partition errors are retried inside librdkafka; they are news, not failures,
        // except that no broker at all answering is what readiness checks must see.
        if error.code == RDKafkaErrorCode.allBrokersDown { state.withLock { $0.brokersDown = true } }
        // The application held a batch past max.poll.interval.ms: its partitions went to other
        // members, and this poll rejoins. An operator should see that a process stalled.
        if error.code == RDKafkaErrorCode.maxPollExceeded {
            logger.warning("consumer left its group: not polled within max.poll.interval.ms; rejoining", metadata: ["message": "\(error.text)"])
            return
        }
        logger.debug("consumer error", metadata: ["code": "\(error.code)", "message": "\(error.text)"])
    }

    /// Commits exactly these offsets (the next offset to read, per partition), synchronously.
    public func commit(_ offsets: [TopicPartition: Int64]) async throws {
        guard !offsets.isEmpty else { return }
        try await run { [self] in try commitBlocking(offsets) }
    }

    private func commitBlocking(_ offsets: [TopicPartition: Int64]) throws {
        guard !offsets.isEmpty else { return }
        try client.commit(offsets)
    }

    /// Hands these offsets to librdkafka to commit in the background and returns at once: for a
    /// consumer whose redelivered messages are harmless (an inbox), so the next poll does not
    /// wait for the broker's answer. A failed commit only means those messages come again.
    /// Ordered with `poll` and `commit` on the consumer's queue.
    public func commitInBackground(_ offsets: [TopicPartition: Int64]) {
        guard !offsets.isEmpty else { return }
        queue.async { [client] in client.commitInBackground(offsets) }
    }

    /// Commits those of these offsets whose partitions this member owns at the moment of the
    /// commit: a retry after a rebalance never moves a new owner's offsets back.
    public func commitOwned(_ offsets: [TopicPartition: Int64]) async throws {
        try await run { [self] in
            let owned = state.withLock { $0.assignment }
            try commitBlocking(offsets.filter { owned.contains($0.key) })
        }
    }

    /// `commitOwned` without waiting for the broker's answer: queued behind earlier calls and
    /// ahead of the next `poll`, so a rebalance that poll serves comes after it. A failure is
    /// handed to `onFailure` (offsets are cumulative: the next commit covers these again).
    public func commitOwnedInBackground(_ offsets: [TopicPartition: Int64], onFailure: @escaping @Sendable (Error) -> Void) {
        guard !offsets.isEmpty else { return }
        queue.async { [self] in
            let owned = state.withLock { $0.assignment }
            do { try commitBlocking(offsets.filter { owned.contains($0.key) }) } catch { onFailure(error) }
        }
    }

    /// The group's committed offsets for these partitions (nil where none was committed).
    public func committed(_ partitions: [TopicPartition], timeoutMs: Int32 = 10_000) async throws -> [TopicPartition: Int64?] {
        try await run { [client] in try client.committed(partitions, timeoutMs: timeoutMs) }
    }

    /// Stops fetching these partitions (their position is kept) until `resume`.
    public func pause(_ partitions: [TopicPartition]) async throws {
        try await setPaused(partitions, paused: true)
    }

    public func resume(_ partitions: [TopicPartition]) async throws {
        try await setPaused(partitions, paused: false)
    }

    private func setPaused(_ partitions: [TopicPartition], paused: Bool) async throws {
        guard !partitions.isEmpty else { return }
        try await run { [client, state] in
            try client.setPaused(partitions, paused: paused)
            state.withLock { s in
                if paused { s.paused.formUnion(partitions) } else { s.paused.subtract(partitions) }
            }
        }
    }

    /// Sets where fetching resumes for these partitions (offset = next message to hand out),
    /// so messages taken but not kept are fetched again rather than lost.
    public func seek(_ offsets: [TopicPartition: Int64]) async throws {
        guard !offsets.isEmpty else { return }
        try await run { [client] in try client.seek(offsets) }
    }

    /// The high watermark librdkafka last saw in a fetch response for this partition.
    public func highWatermark(_ partition: TopicPartition) -> Int64? {
        client.cachedHighWatermark(topic: partition.topic, partition: partition.partition)
    }

    /// Leaves the group (revoking partitions) and stops fetching. Idempotent.
    public func close() async {
        let first = state.withLock { s in
            defer { s.closed = true }
            return !s.closed
        }
        guard first else { return }
        try? await run { [client] in client.closeConsumer() }
    }

    private func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result { try body() }) }
        }
    }
}
