import CRdKafka
import Logging

extension RDKafkaClient {
    /// A consumer that joins its group by `subscribe`: each assignment change, served inside a
    /// poll, is applied here and told to `context.onRebalance`.
    static func groupConsumer(settings: [String: String], logger: Logger) throws -> RDKafkaClient {
        try RDKafkaClient(kind: .consumer, settings: settings, logger: logger) { conf in
            rd_kafka_conf_set_rebalance_cb(conf) { rk, err, partitions, opaque in
                guard let rk, let partitions, let opaque else { return }
                Unmanaged<CallbackContext>.fromOpaque(opaque).takeUnretainedValue().rebalance(rk, err, partitions)
            }
        }
    }
}

extension RDKafkaClient.CallbackContext {
    /// Takes or gives up the partitions (incrementally under the cooperative protocol), then
    /// sets new ones paused or fetching as `onRebalance` answers: librdkafka keeps a partition's
    /// pause flag across revoke and re-assign, so it is never left to chance.
    fileprivate func rebalance(_ rk: OpaquePointer, _ err: rd_kafka_resp_err_t, _ partitions: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) {
        let list = partitions.elements.map(\.0)
        let cooperative = String(cString: rd_kafka_rebalance_protocol(rk)) == "COOPERATIVE"
        if err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS {
            if cooperative { rd_kafka_error_destroy(rd_kafka_incremental_assign(rk, partitions)) } else { rd_kafka_assign(rk, partitions) }
            let paused = onRebalance?(.assigned(list)) ?? false
            _ = paused ? rd_kafka_pause_partitions(rk, partitions) : rd_kafka_resume_partitions(rk, partitions)
        } else {
            if cooperative { rd_kafka_error_destroy(rd_kafka_incremental_unassign(rk, partitions)) } else { rd_kafka_assign(rk, nil) }
            _ = onRebalance?(.revoked(list))
        }
        logger.info(
            "rebalance", metadata: ["event": "\(err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS ? "assigned" : "revoked")", "partitions": "\(list)"])
    }
}
