import CRdKafka
import Logging

/// Building an `rd_kafka_conf_t`: the settings, and the log and error callbacks every handle has.
enum RDKafkaConfig {
    /// A conf holding `settings`; the caller owns it until `rd_kafka_new` takes it.
    static func make(_ settings: [String: String]) throws -> OpaquePointer {
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
        return conf
    }

    /// Routes librdkafka's logs and errors to the `CallbackContext` that `opaque` points to.
    static func setCallbacks(_ conf: OpaquePointer, opaque: UnsafeMutableRawPointer) {
        rd_kafka_conf_set_opaque(conf, opaque)
        rd_kafka_conf_set_log_cb(conf) { rk, level, facility, message in
            guard let rk, let opaque = rd_kafka_opaque(rk) else { return }
            let context = Unmanaged<RDKafkaClient.CallbackContext>.fromOpaque(opaque).takeUnretainedValue()
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
            let context = Unmanaged<RDKafkaClient.CallbackContext>.fromOpaque(opaque).takeUnretainedValue()
            let reason = String(cString: reason!)
            context.logger.debug("librdkafka error", metadata: ["code": "\(code)", "reason": "\(reason)"])
            // "1/1 brokers are down" follows the reason (an SSL handshake's, a refused connection's): keep the reason.
            if rd_kafka_resp_err_t(code) != RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN { context.lastError.withLock { $0 = reason } }
            context.onError?(code)
        }
    }
}
