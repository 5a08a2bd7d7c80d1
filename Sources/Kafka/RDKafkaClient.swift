import CRdKafka
import Foundation
import Logging

/// Owns one `rd_kafka_t` and destroys it in `deinit`. Every C type of the module lives
/// behind this class and the two clients built on it.
final class RDKafkaClient: @unchecked Sendable {
    let handle: OpaquePointer
    let context: CallbackContext
    private let contextRef: Unmanaged<CallbackContext>

    /// Callback state reachable from C through the conf opaque.
    final class CallbackContext: @unchecked Sendable {
        let logger: Logger
        var onRebalance: ((OpaquePointer, rd_kafka_resp_err_t, UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) -> Void)?
        var onError: ((rd_kafka_resp_err_t) -> Void)?
        /// librdkafka's latest error text ("SSL handshake failed: ... certificate verify failed"):
        /// what a bare "Broker transport failure" leaves out.
        let lastError = Locked<String?>(nil)
        init(logger: Logger) { self.logger = logger }
    }

    enum Kind { case producer, consumer }

    init(
        kind: Kind, settings: [String: String], logger: Logger,
        configure: (OpaquePointer) -> Void = { _ in }
    ) throws {
        guard let conf = rd_kafka_conf_new() else { throw KafkaError.configuration("rd_kafka_conf_new failed") }
        var errorText = [CChar](repeating: 0, count: 512)
        for (key, value) in settings.sorted(by: { $0.key < $1.key }) {
            if rd_kafka_conf_set(conf, key, value, &errorText, errorText.count) != RD_KAFKA_CONF_OK {
                rd_kafka_conf_destroy(conf)
                // librdkafka's text may quote the value: for a secret key only the key is named.
                let reason = KafkaConfiguration.isSecret(key) ? "invalid value (hidden)" : String(cBuffer: errorText)
                throw KafkaError.configuration("\(key): \(reason)")
            }
        }
        let context = CallbackContext(logger: logger)
        let ref = Unmanaged.passRetained(context)
        rd_kafka_conf_set_opaque(conf, ref.toOpaque())
        rd_kafka_conf_set_log_cb(conf) { rk, level, facility, message in
            guard let rk, let opaque = rd_kafka_opaque(rk) else { return }
            let context = Unmanaged<CallbackContext>.fromOpaque(opaque).takeUnretainedValue()
            let facility = String(cString: facility!)
            // Connection failures (FAIL) are retried by librdkafka and reach callers as KafkaError
            // when they matter: logging each one would bury the one-line error a CLI owes its user.
            let important = level <= 3 && facility != "FAIL"
            context.logger.log(
                level: important ? .warning : .debug, "\(String(cString: message!))",
                metadata: ["source": "librdkafka", "facility": "\(facility)"])
        }
        // Errors reach callers as KafkaError; the error callback only replaces librdkafka's stderr print.
        rd_kafka_conf_set_error_cb(conf) { rk, code, reason, _ in
            guard let rk, let opaque = rd_kafka_opaque(rk) else { return }
            let context = Unmanaged<CallbackContext>.fromOpaque(opaque).takeUnretainedValue()
            let reason = String(cString: reason!)
            context.logger.debug("librdkafka error", metadata: ["code": "\(code)", "reason": "\(reason)"])
            // "1/1 brokers are down" follows the reason (an SSL handshake's, a refused connection's): keep the reason.
            if rd_kafka_resp_err_t(code) != RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN { context.lastError.withLock { $0 = reason } }
            context.onError?(rd_kafka_resp_err_t(code))
        }
        configure(conf)
        guard let rk = rd_kafka_new(kind == .producer ? RD_KAFKA_PRODUCER : RD_KAFKA_CONSUMER, conf, &errorText, errorText.count) else {
            ref.release()
            rd_kafka_conf_destroy(conf)
            throw KafkaError.configuration(String(cBuffer: errorText))
        }
        self.handle = rk
        self.context = context
        self.contextRef = ref
    }

    deinit {
        rd_kafka_destroy(handle)
        contextRef.release()
    }

    /// A metadata round trip: the bounded way to learn that the brokers are unreachable.
    func checkConnection(brokers: String, timeoutMs: Int32) throws {
        var metadata: UnsafePointer<rd_kafka_metadata>?
        let err = rd_kafka_metadata(handle, 0, nil, &metadata, timeoutMs)
        if let metadata { rd_kafka_metadata_destroy(metadata) }
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw KafkaError(
                code: err, operation: "connect",
                message: "cannot reach Kafka at \(brokers) within \(timeoutMs) ms: \(String(cString: rd_kafka_err2str(err)))"
                    + (context.lastError.withLock { $0 }.map { " (\($0.split(whereSeparator: \.isNewline).joined(separator: " ").prefix(500)))" }
                        ?? ""))
        }
    }

    /// Cached high watermark (from fetch responses), the right source of lag on brokers
    /// whose ListOffsets answers are unreliable.
    func cachedHighWatermark(topic: String, partition: Int32) -> Int64? {
        var low: Int64 = -1, high: Int64 = -1
        let err = rd_kafka_get_watermark_offsets(handle, topic, partition, &low, &high)
        return err == RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0 ? high : nil
    }
}

/// Topic names by librdkafka topic handle, for one poll loop: a name is built from C once per
/// topic, not once per message.
struct TopicNames {
    private var names: [OpaquePointer: String] = [:]

    mutating func name(of rkt: OpaquePointer) -> String {
        if let cached = names[rkt] { return cached }
        let name = String(cString: rd_kafka_topic_name(rkt))
        names[rkt] = name
        return name
    }
}

extension Duration {
    /// Whole milliseconds, as librdkafka's timeouts take them (capped at Int32.max, at least 0).
    var rdKafkaMilliseconds: Int32 {
        let ms = components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000
        return Int32(clamping: max(ms, 0))
    }
}

/// Topic, partition and offset: what commits, pauses and assignments are made of.
public struct TopicPartition: Hashable, Sendable, CustomStringConvertible {
    public var topic: String
    public var partition: Int32
    public init(topic: String, partition: Int32) {
        self.topic = topic
        self.partition = partition
    }
    public var description: String { "\(topic)[\(partition)]" }
}

extension Array where Element == (TopicPartition, Int64) {
    /// A C list that lives only for the closure: the pointer never escapes.
    func withPartitionList<R>(_ body: (UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) throws -> R) rethrows -> R {
        let list = rd_kafka_topic_partition_list_new(Int32(count))!
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for (tp, offset) in self {
            rd_kafka_topic_partition_list_add(list, tp.topic, tp.partition).pointee.offset = offset
        }
        return try body(list)
    }
}

extension UnsafeMutablePointer where Pointee == rd_kafka_topic_partition_list_t {
    var elements: [(TopicPartition, Int64, rd_kafka_resp_err_t)] {
        (0..<Int(pointee.cnt)).map { i in
            let e = pointee.elems[i]
            return (TopicPartition(topic: String(cString: e.topic), partition: e.partition), e.offset, e.err)
        }
    }
}

extension String {
    /// A NUL-terminated C buffer filled in by librdkafka.
    init(cBuffer: [CChar]) {
        self = String(decoding: cBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
