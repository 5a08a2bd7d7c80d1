import CRdKafka
import Foundation
import Logging
import Synchronization

/// Idempotent producer (acks=all). `send` returns only once the broker acknowledged every
/// record, so a record that did not reach the broker is a thrown error, never a silent loss.
public final class KafkaProducer: Sendable {
    private let client: RDKafkaClient
    private let brokers: String
    private let closed = Locked(false)
    private let pollerDone = DispatchSemaphore(value: 0)

    public init(
        configuration: KafkaConfiguration, logger: Logger = Logger(label: "kafka.producer"),
        deliveryTimeoutMs: Int = 60_000
    ) throws {
        brokers = configuration.brokers
        client = try RDKafkaClient(
            kind: .producer,
            settings: configuration.settings([
                "enable.idempotence": "true",
                "acks": "all",
                "linger.ms": "5",
                "message.timeout.ms": String(deliveryTimeoutMs),
            ]), logger: logger
        ) { conf in
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
                    // A fatal error (the idempotent producer's state is gone) must not be retried as if transient.
                    slot.batch.complete(
                        slot.index, .failure(KafkaError(code: m.err, operation: "produce", isFatal: m.err == RD_KAFKA_RESP_ERR__FATAL)))
                }
            }
        }
        // Delivery reports are served by this thread, never by Swift's cooperative pool.
        let thread = Thread { [client, closed, pollerDone] in
            while !closed.withLock({ $0 }) { rd_kafka_poll(client.handle, 50) }
            pollerDone.signal()
        }
        thread.name = "kafka-producer-poll"
        thread.start()
    }

    deinit { closeBlocking(timeoutMs: 0) }

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
        let batch = Deliveries(count: records.count)
        for (index, record) in records.enumerated() {
            do {
                try enqueue(record, slot: DeliverySlot(batch: batch, index: index))
            } catch let error as KafkaError {
                batch.complete(index, .failure(error))
            } catch {
                batch.complete(index, .failure(KafkaError(code: RD_KAFKA_RESP_ERR__FAIL, operation: "produce", message: "\(error)")))
            }
        }
        return batch
    }

    private func enqueue(_ record: KafkaRecord, slot: DeliverySlot) throws {
        let opaque = Unmanaged.passRetained(slot).toOpaque()
        var attempt = 0
        while true {
            let err = produce(record, opaque: opaque)
            if err == RD_KAFKA_RESP_ERR_NO_ERROR { return }
            // A full local queue drains as the poll thread serves delivery reports.
            if err == RD_KAFKA_RESP_ERR__QUEUE_FULL && attempt < 30_000 {
                attempt += 1
                usleep(1_000)
                continue
            }
            Unmanaged<DeliverySlot>.fromOpaque(opaque).release()
            throw KafkaError(code: err, operation: "produce")
        }
    }

    private func produce(_ record: KafkaRecord, opaque: UnsafeMutableRawPointer) -> rd_kafka_resp_err_t {
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
        guard !closed.withLock({ $0 }) else { return }
        _ = flushBlocking(timeoutMs: timeoutMs)
        let wasClosed = closed.withLock { c in
            defer { c = true }
            return c
        }
        if !wasClosed { pollerDone.wait() }
    }
}

/// The delivery reports of one enqueued batch: `outcomes()` returns once all are in, whether
/// they came before it was called or after.
public final class Deliveries: @unchecked Sendable {
    private let lock = NSLock()
    private var results: [Result<DeliveryReport, KafkaError>?]
    private var remaining: Int
    private var waiter: CheckedContinuation<[Result<DeliveryReport, KafkaError>], Never>?

    init(count: Int) {
        results = Array(repeating: nil, count: count)
        remaining = count
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
