import Foundation
import Logging
import Synchronization

/// Idempotent producer (acks=all). `send` returns only once the broker acknowledged every
/// record, so a record that did not reach the broker is a thrown error, never a silent loss.
///
/// With `renewsWhenFenced`, a producer whose producer id the broker fenced, or whose idempotent
/// state librdkafka declared fatal, starts a new session (a new handle, so a new producer id)
/// for the next records, and reports the failed ones as retriable: librdkafka's documented
/// recovery from a fatal error, for callers whose records are safe to send again (the
/// archiver's dead letters and compensation events). Seen on the local broker: a message timed
/// out while it was frozen left the producer fenced for good.
public final class KafkaProducer: Sendable {
    private let session: Locked<Session>
    private let brokers: String
    private let renewsWhenFenced: Bool
    private let makeSession: @Sendable () throws -> Session
    private let closed = Locked(false)

    /// One librdkafka handle and the thread that serves its delivery reports.
    private final class Session: Sendable {
        let client: RDKafkaClient
        let broken = Locked(false)
        private let stopped = Locked(false)
        private let pollerDone = DispatchSemaphore(value: 0)

        init(_ client: RDKafkaClient) {
            self.client = client
            // Delivery reports are served by this thread, never by Swift's cooperative pool.
            let thread = Thread { [client, stopped, pollerDone] in
                while !stopped.withLock({ $0 }) { client.poll(timeoutMs: 50) }
                pollerDone.signal()
            }
            thread.name = "kafka-producer-poll"
            thread.start()
        }

        /// Flushes for up to `timeoutMs`, then stops the poll thread. Idempotent.
        func stop(timeoutMs: Int32) {
            guard !stopped.withLock({ $0 }) else { return }
            _ = client.flush(timeoutMs: timeoutMs)
            let wasStopped = stopped.withLock { s in
                defer { s = true }
                return s
            }
            if !wasStopped { pollerDone.wait() }
        }
    }

    public init(
        configuration: KafkaConfiguration, logger: Logger = Logger(label: "kafka.producer"),
        deliveryTimeoutMs: Int = 60_000, renewsWhenFenced: Bool = false
    ) throws {
        brokers = configuration.brokers
        self.renewsWhenFenced = renewsWhenFenced
        let settings = configuration.settings([
            "enable.idempotence": "true",
            "acks": "all",
            "linger.ms": "5",
            "message.timeout.ms": String(deliveryTimeoutMs),
        ])
        makeSession = { Session(try RDKafkaClient.producer(settings: settings, logger: logger)) }
        session = Locked(try makeSession())
    }

    deinit {
        session.withLock { $0 }.stop(timeoutMs: 0)
    }

    private var client: RDKafkaClient { session.withLock { $0 }.client }

    /// Fails fast, within `timeoutMs`, when no broker answers.
    public func checkConnection(timeoutMs: Int32 = 5_000) async throws {
        try await offload { [client, brokers] in try client.checkConnection(brokers: brokers, timeoutMs: timeoutMs) }
    }

    public func send(_ record: KafkaRecord) async throws -> DeliveryReport {
        try await send([record])[0]
    }

    /// Enqueues every record, then waits for all acknowledgements. The first failure is thrown
    /// after all reports are in, so the caller knows the batch's fate as a whole.
    public func send(_ records: [KafkaRecord]) async throws -> [DeliveryReport] {
        try await sendEach(records).map { try $0.get() }
    }

    /// Like `send`, with each record's own outcome, so a caller can retry exactly the records that
    /// failed and never produce the others twice.
    public func sendEach(_ records: [KafkaRecord]) async -> [Result<DeliveryReport, KafkaError>] {
        await enqueueEach(records).outcomes()
    }

    /// Hands every record to librdkafka now, in order, and returns their outcomes to wait for.
    /// Batches enqueued one after the other from one task reach each partition in that order;
    /// `sendEach` from concurrent tasks may interleave theirs.
    public func enqueueEach(_ records: [KafkaRecord]) -> Deliveries {
        let current = currentSession()
        let batch = Deliveries(count: records.count) { [renewsWhenFenced] code in
            // A fatal error (the idempotent producer's state is gone) is never retried as if
            // transient, unless this producer renews its session for the retry.
            let fenced = RDKafkaErrorCode.fenced.contains(code)
            if fenced { current.broken.withLock { $0 = true } }
            return KafkaError(
                code: code, operation: "produce", isRetriable: fenced && renewsWhenFenced ? true : nil,
                isFatal: code == RDKafkaErrorCode.fatal && !renewsWhenFenced)
        }
        for (index, record) in records.enumerated() {
            do {
                try enqueue(record, slot: DeliverySlot(batch: batch, index: index), on: current)
            } catch let error as KafkaError {
                batch.complete(index, .failure(error))
            } catch {
                batch.complete(index, .failure(KafkaError(code: RDKafkaErrorCode.fail, operation: "produce", message: "\(error)")))
            }
        }
        return batch
    }

    /// The session to send on: a new one when the current one was fenced and this producer renews.
    private func currentSession() -> Session {
        let (current, stale) = session.withLock { s -> (Session, Session?) in
            guard renewsWhenFenced, s.broken.withLock({ $0 }), let fresh = try? makeSession() else { return (s, nil) }
            let stale = s
            s = fresh
            return (fresh, stale)
        }
        // What the old session still holds fails or lands in the background; it is not waited for.
        if let stale { DispatchQueue.global().async { stale.stop(timeoutMs: 1_000) } }
        return current
    }

    private func enqueue(_ record: KafkaRecord, slot: DeliverySlot, on session: Session) throws {
        let opaque = Unmanaged.passRetained(slot).toOpaque()
        var attempt = 0
        while true {
            let err = session.client.produce(record, opaque: opaque)
            if err == RDKafkaErrorCode.noError { return }
            // A full local queue drains as the poll thread serves delivery reports.
            if err == RDKafkaErrorCode.queueFull && attempt < 30_000 {
                attempt += 1
                usleep(1_000)
                continue
            }
            Unmanaged<DeliverySlot>.fromOpaque(opaque).release()
            // Refused before sending: as it always was, unless a renewal makes it worth a retry.
            throw renewsWhenFenced ? slot.batch.failure(err) : KafkaError(code: err, operation: "produce")
        }
    }

    /// Waits up to `timeoutMs` for everything queued to be delivered.
    public func flush(timeoutMs: Int32 = 10_000) async -> Bool {
        (try? await offload { [self] in client.flush(timeoutMs: timeoutMs) }) ?? false
    }

    /// Flushes, then stops the poll thread. Idempotent.
    public func close(timeoutMs: Int32 = 10_000) async {
        _ = try? await offload { [self] in closeBlocking(timeoutMs: timeoutMs) }
    }

    private func closeBlocking(timeoutMs: Int32) {
        let wasClosed = closed.withLock { c in
            defer { c = true }
            return c
        }
        if !wasClosed { session.withLock { $0 }.stop(timeoutMs: timeoutMs) }
    }
}
