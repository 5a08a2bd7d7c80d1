import CRdKafka
import Foundation
import Logging

/// Owns one `rd_kafka_t` and destroys it in `deinit`. Every librdkafka call of the module is
/// made in this folder, mostly in extensions of this class (one file per concern); the public
/// types above it see only Swift values.
final class RDKafkaClient: @unchecked Sendable {
    let handle: OpaquePointer
    let context: CallbackContext
    private let contextRef: Unmanaged<CallbackContext>

    /// Callback state reachable from C through the conf opaque.
    final class CallbackContext: @unchecked Sendable {
        let logger: Logger
        /// Told each assignment change (see `groupConsumer`); answers whether newly assigned
        /// partitions start paused.
        var onRebalance: ((RebalanceEvent) -> Bool)?
        /// Told each error code librdkafka reports through its error callback.
        var onError: ((Int32) -> Void)?
        /// librdkafka's latest error text ("SSL handshake failed: ... certificate verify failed"):
        /// what a bare "Broker transport failure" leaves out.
        let lastError = Locked<String?>(nil)
        init(logger: Logger) { self.logger = logger }
    }

    enum Kind { case producer, consumer }

    /// `configure` adds callbacks to the conf before the handle is made (see `groupConsumer`, `producer`).
    init(
        kind: Kind, settings: [String: String], logger: Logger,
        configure: (OpaquePointer) -> Void = { _ in }
    ) throws {
        let conf = try RDKafkaConfig.make(settings)
        let context = CallbackContext(logger: logger)
        let ref = Unmanaged.passRetained(context)
        RDKafkaConfig.setCallbacks(conf, opaque: ref.toOpaque())
        configure(conf)
        var errorText = [CChar](repeating: 0, count: 512)
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

    /// Cached high watermark (from fetch responses), the right source of lag on brokers
    /// whose ListOffsets answers are unreliable.
    func cachedHighWatermark(topic: String, partition: Int32) -> Int64? {
        var low: Int64 = -1, high: Int64 = -1
        let err = rd_kafka_get_watermark_offsets(handle, topic, partition, &low, &high)
        return err == RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0 ? high : nil
    }
}

extension Duration {
    /// Whole milliseconds, as librdkafka's timeouts take them (capped at Int32.max, at least 0).
    var rdKafkaMilliseconds: Int32 {
        let ms = components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000
        return Int32(clamping: max(ms, 0))
    }
}

extension String {
    /// A NUL-terminated C buffer filled in by librdkafka.
    init(cBuffer: [CChar]) {
        self = String(decoding: cBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
