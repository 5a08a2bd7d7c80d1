import CRdKafka
import Foundation
import Logging
import Synchronization

/// A partition assignment change, as seen during one `poll`.
public enum RebalanceEvent: Sendable, Equatable {
    case assigned([TopicPartition])
    case revoked([TopicPartition])
}

/// What one `poll` returned: messages in partition order, and any rebalance that happened
/// while polling. Rebalances are only served inside `poll`, so a caller that commits
/// everything it polled before polling again never has uncommitted work revoked.
public struct PollResult: Sendable {
    public var messages: [KafkaMessage]
    public var rebalances: [RebalanceEvent]
    /// For each partition revoked during the poll, how many of `messages` had been taken when it
    /// was last revoked: its messages before that index belong to the assignment that ended
    /// (whoever owns the partition now fetches them again from the last commit); its messages
    /// after it were fetched after it was assigned back.
    public var revokedAt: [TopicPartition: Int] = [:]

    public init(messages: [KafkaMessage], rebalances: [RebalanceEvent], revokedAt: [TopicPartition: Int] = [:]) {
        self.messages = messages
        self.rebalances = rebalances
        self.revokedAt = revokedAt
    }

    /// The messages of the assignment in force when the poll returned.
    public var current: [KafkaMessage] {
        guard !revokedAt.isEmpty else { return messages }
        return messages.indices.compactMap { i in
            let m = messages[i]
            return i < (revokedAt[m.topicPartition] ?? 0) ? nil : m
        }
    }
}

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
        client = try RDKafkaClient(kind: .consumer, settings: configuration.settings, logger: logger) { conf in
            rd_kafka_conf_set_rebalance_cb(conf) { rk, err, partitions, opaque in
                guard let rk, let partitions, let opaque else { return }
                let context = Unmanaged<RDKafkaClient.CallbackContext>.fromOpaque(opaque).takeUnretainedValue()
                context.onRebalance?(rk, err, partitions)
            }
        }
        client.context.onRebalance = { [state, logger] rk, err, partitions in
            let list = partitions.elements.map(\.0)
            let cooperative = String(cString: rd_kafka_rebalance_protocol(rk)) == "COOPERATIVE"
            if err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS {
                if cooperative { rd_kafka_error_destroy(rd_kafka_incremental_assign(rk, partitions)) } else { rd_kafka_assign(rk, partitions) }
                let paused = state.withLock {
                    $0.assignment.formUnion(list)
                    $0.pendingRebalances.append(.assigned(list))
                    if $0.pauseNewAssignments { $0.paused.formUnion(list) } else { $0.paused.subtract(list) }
                    return $0.pauseNewAssignments
                }
                _ = paused ? rd_kafka_pause_partitions(rk, partitions) : rd_kafka_resume_partitions(rk, partitions)
            } else {
                if cooperative { rd_kafka_error_destroy(rd_kafka_incremental_unassign(rk, partitions)) } else { rd_kafka_assign(rk, nil) }
                state.withLock {
                    $0.assignment.subtract(list)
                    $0.paused.subtract(list)
                    $0.pendingRebalances.append(.revoked(list))
                }
            }
            logger.info(
                "rebalance", metadata: ["event": "\(err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS ? "assigned" : "revoked")", "partitions": "\(list)"])
        }
        // Generic errors come through the error callback, served inside polls.
        client.context.onError = { [state] err in
            if err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN { state.withLock { $0.brokersDown = true } }
        }
        rd_kafka_poll_set_consumer(client.handle)
        // No topics: a handle for the group's committed offsets only, which never joins the group.
        guard !configuration.topics.isEmpty else { return }
        let topics = configuration.topics.map { ($0, Int64(RD_KAFKA_OFFSET_INVALID)) }
        let err = topics.map { (TopicPartition(topic: $0.0, partition: RD_KAFKA_PARTITION_UA), $0.1) }
            .withPartitionList { rd_kafka_subscribe(client.handle, $0) }
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(code: err, operation: "subscribe") }
    }

    deinit {
        let closed = state.withLock { $0.closed }
        if !closed { rd_kafka_consumer_close(client.handle) }
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
            let raw = rd_kafka_consumer_poll(client.handle, wait)
            // Rebalance callbacks run inside that call, before the message it returns.
            state.withLock { s in
                for case .revoked(let partitions) in s.pendingRebalances[rebalancesSeen...] {
                    for p in partitions { revokedAt[p] = messages.count }
                }
                rebalancesSeen = s.pendingRebalances.count
            }
            guard let raw else { break }
            defer { rd_kafka_message_destroy(raw) }
            wait = 0
            let m = raw.pointee
            if m.err != RD_KAFKA_RESP_ERR_NO_ERROR {
                try handlePollError(m.err, raw)
                continue
            }
            messages.append(
                KafkaMessage(
                    topic: topicNames.name(of: m.rkt), partition: m.partition, offset: m.offset,
                    key: m.key.map { Array(UnsafeRawBufferPointer(start: $0, count: m.key_len)) },
                    value: m.payload.map { Array(UnsafeRawBufferPointer(start: $0, count: m.len)) } ?? [],
                    headers: Self.headers(of: raw), timestampMs: Self.timestamp(of: raw)))
        }
        let rebalances = state.withLock { s in
            defer { s.pendingRebalances.removeAll() }
            if !messages.isEmpty { s.brokersDown = false }
            return s.pendingRebalances
        }
        return PollResult(messages: messages, rebalances: rebalances, revokedAt: revokedAt)
    }

    private func handlePollError(_ err: rd_kafka_resp_err_t, _ raw: UnsafeMutablePointer<rd_kafka_message_t>) throws {
        if err == RD_KAFKA_RESP_ERR__FATAL {
            var text = [CChar](repeating: 0, count: 512)
            let code = rd_kafka_fatal_error(client.handle, &text, text.count)
            throw KafkaError(code: code, operation: "poll", message: String(cBuffer: text), isRetriable: false, isFatal: true)
        }
        // Transport and partition errors are retried inside librdkafka; they are news, not failures,
        // except that no broker at all answering is what readiness checks must see.
        if err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN { state.withLock { $0.brokersDown = true } }
        let text = raw.pointee.payload.map { String(cString: $0.assumingMemoryBound(to: CChar.self)) } ?? String(cString: rd_kafka_err2str(err))
        // The application held a batch past max.poll.interval.ms: its partitions went to other
        // members, and this poll rejoins. An operator should see that a process stalled.
        if err == RD_KAFKA_RESP_ERR__MAX_POLL_EXCEEDED {
            logger.warning("consumer left its group: not polled within max.poll.interval.ms; rejoining", metadata: ["message": "\(text)"])
            return
        }
        logger.debug("consumer error", metadata: ["code": "\(err.rawValue)", "message": "\(text)"])
    }

    private static func headers(of raw: UnsafeMutablePointer<rd_kafka_message_t>) -> [KafkaHeader] {
        var hdrs: OpaquePointer?
        guard rd_kafka_message_headers(raw, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR, let hdrs else { return [] }
        var result: [KafkaHeader] = []
        var index = 0
        var name: UnsafePointer<CChar>?
        var value: UnsafeRawPointer?
        var size = 0
        while rd_kafka_header_get_all(hdrs, index, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR {
            result.append(KafkaHeader(String(cString: name!), value.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) } ?? []))
            index += 1
        }
        return result
    }

    private static func timestamp(of raw: UnsafeMutablePointer<rd_kafka_message_t>) -> Int64? {
        var type = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
        let ts = rd_kafka_message_timestamp(raw, &type)
        return type == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? nil : ts
    }

    /// Commits exactly these offsets (the next offset to read, per partition), synchronously.
    public func commit(_ offsets: [TopicPartition: Int64]) async throws {
        guard !offsets.isEmpty else { return }
        try await run { [self] in try commitBlocking(offsets) }
    }

    private func commitBlocking(_ offsets: [TopicPartition: Int64]) throws {
        guard !offsets.isEmpty else { return }
        let err = offsets.map { ($0.key, $0.value) }.withPartitionList { list -> rd_kafka_resp_err_t in
            let err = rd_kafka_commit(client.handle, list, 0)
            if err != RD_KAFKA_RESP_ERR_NO_ERROR { return err }
            return list.elements.first { $0.2 != RD_KAFKA_RESP_ERR_NO_ERROR }?.2 ?? RD_KAFKA_RESP_ERR_NO_ERROR
        }
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(code: err, operation: "commit") }
    }

    /// Hands these offsets to librdkafka to commit in the background and returns at once: for a
    /// consumer whose redelivered messages are harmless (an inbox), so the next poll does not
    /// wait for the broker's answer. A failed commit only means those messages come again.
    /// Ordered with `poll` and `commit` on the consumer's queue.
    public func commitInBackground(_ offsets: [TopicPartition: Int64]) {
        guard !offsets.isEmpty else { return }
        queue.async { [client] in
            _ = offsets.map { ($0.key, $0.value) }.withPartitionList { list in rd_kafka_commit(client.handle, list, 1) }
        }
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
        try await run { [client] in
            try partitions.map { ($0, Int64(RD_KAFKA_OFFSET_INVALID)) }.withPartitionList { list in
                let err = rd_kafka_committed(client.handle, list, timeoutMs)
                guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(code: err, operation: "committed") }
                var result: [TopicPartition: Int64?] = [:]
                for (tp, offset, _) in list.elements { result[tp] = offset >= 0 ? offset : nil }
                return result
            }
        }
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
            let err = partitions.map { ($0, Int64(RD_KAFKA_OFFSET_INVALID)) }.withPartitionList { list in
                let err = paused ? rd_kafka_pause_partitions(client.handle, list) : rd_kafka_resume_partitions(client.handle, list)
                // Per partition too: one that was not paused (resumed) is not reported as such.
                return err != RD_KAFKA_RESP_ERR_NO_ERROR ? err : list.elements.first { $0.2 != RD_KAFKA_RESP_ERR_NO_ERROR }?.2 ?? err
            }
            guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(code: err, operation: paused ? "pause" : "resume") }
            state.withLock { s in
                if paused { s.paused.formUnion(partitions) } else { s.paused.subtract(partitions) }
            }
        }
    }

    /// Sets where fetching resumes for these partitions (offset = next message to hand out),
    /// so messages taken but not kept are fetched again rather than lost.
    public func seek(_ offsets: [TopicPartition: Int64]) async throws {
        guard !offsets.isEmpty else { return }
        try await run { [client] in
            try offsets.map { ($0.key, $0.value) }.withPartitionList { list in
                if let error = rd_kafka_seek_partitions(client.handle, list, 5_000) {
                    defer { rd_kafka_error_destroy(error) }
                    throw KafkaError(code: rd_kafka_error_code(error), operation: "seek")
                }
                if let failed = list.elements.first(where: { $0.2 != RD_KAFKA_RESP_ERR_NO_ERROR }) {
                    throw KafkaError(code: failed.2, operation: "seek")
                }
            }
        }
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
        try? await run { [client] in _ = rd_kafka_consumer_close(client.handle) }
    }

    private func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result { try body() }) }
        }
    }
}
