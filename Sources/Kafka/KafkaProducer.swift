import CRdKafka
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
                while !stopped.withLock({ $0 }) { rd_kafka_poll(client.handle, 50) }
                pollerDone.signal()
            }
            thread.name = "kafka-producer-poll"
            thread.start()
        }

        /// Flushes for up to `timeoutMs`, then stops the poll thread. Idempotent.
        func stop(timeoutMs: Int32) {
            guard !stopped.withLock({ $0 }) else { return }
            _ = rd_kafka_flush(client.handle, timeoutMs)
            let wasStopped = stopped.withLock { s in
                defer { s = true }
                return s
            }
            if !wasStopped { pollerDone.wait() }
        }
    }

    /// Codes after which an idempotent producer id can send nothing more.
    static let fencedCodes: Set<Int32> = Set(
        [RD_KAFKA_RESP_ERR__FATAL, RD_KAFKA_RESP_ERR_PRODUCER_FENCED, RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH, RD_KAFKA_RESP_ERR__FENCED].map(
            \.rawValue))

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
        makeSession = {
            let client = try RDKafkaClient(kind: .producer, settings: settings, logger: logger) { conf in
                rd_kafka_conf_set_dr_msg_cb(conf) { _, message, _ in
                    guard let message, let opaque = message.pointee._private else { return }
                    let slot = Unmanaged<DeliverySlot>.fromOpaque(opaque).takeRetainedValue()
                    let m = message.pointee
                    if m.err == RD_KAFKA_RESP_ERR_NO_ERROR {
                        slot.batch.complete(
                            slot.index,
                            .success(
                                DeliveryReport(
                                    topic: String(cString: rd_kafka_topic_name(m.rkt)), partition: m.partition, offset: m.offset)))
                    } else {
                        slot.batch.complete(slot.index, .failure(slot.batch.failure(m.err)))
                    }
                }
            }
            return Session(client)
        }
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
            let fenced = Self.fencedCodes.contains(code.rawValue)
            if fenced { current.broken.withLock { $0 = true } }
            return KafkaError(
                code: code, operation: "produce", isRetriable: fenced && renewsWhenFenced ? true : nil,
                isFatal: code == RD_KAFKA_RESP_ERR__FATAL && !renewsWhenFenced)
        }
        for (index, record) in records.enumerated() {
            do {
                try enqueue(record, slot: DeliverySlot(batch: batch, index: index), on: current)
            } catch let error as KafkaError {
                batch.complete(index, .failure(error))
            } catch {
                batch.complete(index, .failure(KafkaError(code: RD_KAFKA_RESP_ERR__FAIL, operation: "produce", message: "\(error)")))
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
            let err = produce(record, opaque: opaque, client: session.client)
            if err == RD_KAFKA_RESP_ERR_NO_ERROR { return }
            // A full local queue drains as the poll thread serves delivery reports.
            if err == RD_KAFKA_RESP_ERR__QUEUE_FULL && attempt < 30_000 {
                attempt += 1
                usleep(1_000)
                continue
            }
            Unmanaged<DeliverySlot>.fromOpaque(opaque).release()
            // Refused before sending: as it always was, unless a renewal makes it worth a retry.
            throw renewsWhenFenced ? slot.batch.failure(err) : KafkaError(code: err, operation: "produce")
        }
    }

    private func produce(_ record: KafkaRecord, opaque: UnsafeMutableRawPointer, client: RDKafkaClient) -> rd_kafka_resp_err_t {
        let headers = rd_kafka_headers_new(record.headers.count)!
        for header in record.headers {
            header.value.withUnsafeBytes { _ = rd_kafka_header_add(headers, header.name, -1, $0.baseAddress, $0.count) }
        }
        let err: rd_kafka_resp_err_t = record.topic.withCString { topic in
            record.value.withUnsafeBytes { value in
                withKey(record.key) { keyPtr, keyLen in
                    var vus = [rd_kafka_vu_t](repeating: rd_kafka_vu_t(), count: 7)
                    vus[0].vtype = RD_KAFKA_VTYPE_TOPIC; vus[0].u.cstr = topic
                    vus[1].vtype = RD_KAFKA_VTYPE_VALUE
                    vus[1].u.mem = .init(ptr: UnsafeMutableRawPointer(mutating: value.baseAddress), size: value.count)
                    vus[2].vtype = RD_KAFKA_VTYPE_KEY; vus[2].u.mem = .init(ptr: keyPtr, size: keyLen)
                    vus[3].vtype = RD_KAFKA_VTYPE_MSGFLAGS; vus[3].u.i = RD_KAFKA_MSG_F_COPY
                    vus[4].vtype = RD_KAFKA_VTYPE_OPAQUE; vus[4].u.ptr = opaque
                    vus[5].vtype = RD_KAFKA_VTYPE_HEADERS; vus[5].u.headers = headers
                    vus[6].vtype = RD_KAFKA_VTYPE_PARTITION; vus[6].u.i32 = record.partition ?? RD_KAFKA_PARTITION_UA
                    guard let error = rd_kafka_produceva(client.handle, &vus, vus.count) else { return RD_KAFKA_RESP_ERR_NO_ERROR }
                    let code = rd_kafka_error_code(error)
                    rd_kafka_error_destroy(error)
                    return code
                }
            }
        }
        // On success librdkafka owns the headers; on failure they are still ours.
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { rd_kafka_headers_destroy(headers) }
        return err
    }

    private func withKey<R>(_ key: [UInt8]?, _ body: (UnsafeMutableRawPointer?, Int) -> R) -> R {
        guard let key else { return body(nil, 0) }
        return key.withUnsafeBytes { body(UnsafeMutableRawPointer(mutating: $0.baseAddress), $0.count) }
    }

    /// Waits up to `timeoutMs` for everything queued to be delivered.
    public func flush(timeoutMs: Int32 = 10_000) async -> Bool {
        (try? await offload { [self] in flushBlocking(timeoutMs: timeoutMs) }) ?? false
    }

    private func flushBlocking(timeoutMs: Int32) -> Bool {
        rd_kafka_flush(client.handle, timeoutMs) == RD_KAFKA_RESP_ERR_NO_ERROR
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

/// The delivery reports of one enqueued batch: `outcomes()` returns once all are in, whether
/// they came before it was called or after.
public final class Deliveries: @unchecked Sendable {
    private let lock = NSLock()
    private var results: [Result<DeliveryReport, KafkaError>?]
    private var remaining: Int
    private var waiter: CheckedContinuation<[Result<DeliveryReport, KafkaError>], Never>?

    /// What a failed delivery is reported as.
    let failure: @Sendable (rd_kafka_resp_err_t) -> KafkaError

    init(count: Int, failure: @escaping @Sendable (rd_kafka_resp_err_t) -> KafkaError) {
        results = Array(repeating: nil, count: count)
        remaining = count
        self.failure = failure
    }

    /// Each record's outcome, in the order enqueued. Call it once.
    public func outcomes() async -> [Result<DeliveryReport, KafkaError>] {
        await withCheckedContinuation { continuation in
            lock.lock()
            guard remaining == 0 else {
                waiter = continuation
                lock.unlock()
                return
            }
            lock.unlock()
            continuation.resume(returning: results.map { $0! })
        }
    }

    func complete(_ index: Int, _ result: Result<DeliveryReport, KafkaError>) {
        lock.lock()
        results[index] = result
        remaining -= 1
        let waiting = remaining == 0 ? waiter : nil
        if waiting != nil { waiter = nil }
        lock.unlock()
        waiting?.resume(returning: results.map { $0! })
    }
}

private final class DeliverySlot {
    let batch: Deliveries
    let index: Int
    init(batch: Deliveries, index: Int) {
        self.batch = batch
        self.index = index
    }
}
