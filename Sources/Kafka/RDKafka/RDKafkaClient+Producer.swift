import CRdKafka
import Logging

/// One produced record's place in its batch: passed through librdkafka as the message's opaque,
/// retained until its delivery report (or a refused produce) releases it.
final class DeliverySlot {
    let batch: Deliveries
    let index: Int
    init(batch: Deliveries, index: Int) {
        self.batch = batch
        self.index = index
    }
}

extension RDKafkaClient {
    /// A producer whose delivery reports complete the `DeliverySlot` each record was produced with.
    static func producer(settings: [String: String], logger: Logger) throws -> RDKafkaClient {
        try RDKafkaClient(kind: .producer, settings: settings, logger: logger) { conf in
            rd_kafka_conf_set_dr_msg_cb(conf) { _, message, _ in
                guard let message, let opaque = message.pointee._private else { return }
                let slot = Unmanaged<DeliverySlot>.fromOpaque(opaque).takeRetainedValue()
                let m = message.pointee
                if m.err == RD_KAFKA_RESP_ERR_NO_ERROR {
                    slot.batch.complete(
                        slot.index,
                        .success(DeliveryReport(topic: String(cString: rd_kafka_topic_name(m.rkt)), partition: m.partition, offset: m.offset)))
                } else {
                    slot.batch.complete(slot.index, .failure(slot.batch.failure(m.err.rawValue)))
                }
            }
        }
    }

    /// Serves delivery reports (and logs and errors) for up to `timeoutMs`.
    func poll(timeoutMs: Int32) { rd_kafka_poll(handle, timeoutMs) }

    /// Waits up to `timeoutMs` for everything queued to be delivered; false when some was not.
    func flush(timeoutMs: Int32) -> Bool { rd_kafka_flush(handle, timeoutMs) == RD_KAFKA_RESP_ERR_NO_ERROR }

    /// Enqueues a copy of `record`, its delivery report to carry `opaque`: librdkafka's code
    /// (`RDKafkaErrorCode.noError` when enqueued).
    func produce(_ record: KafkaRecord, opaque: UnsafeMutableRawPointer) -> Int32 {
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
                    guard let error = rd_kafka_produceva(handle, &vus, vus.count) else { return RD_KAFKA_RESP_ERR_NO_ERROR }
                    let code = rd_kafka_error_code(error)
                    rd_kafka_error_destroy(error)
                    return code
                }
            }
        }
        // On success librdkafka owns the headers; on failure they are still ours.
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { rd_kafka_headers_destroy(headers) }
        return err.rawValue
    }

    private func withKey<R>(_ key: [UInt8]?, _ body: (UnsafeMutableRawPointer?, Int) -> R) -> R {
        guard let key else { return body(nil, 0) }
        return key.withUnsafeBytes { body(UnsafeMutableRawPointer(mutating: $0.baseAddress), $0.count) }
    }
}
