import CRdKafka

/// One error type for everything the Kafka module raises: librdkafka's code (open, so new
/// codes need no new case), a message, and what the caller needs to decide: retry or give up.
public struct KafkaError: Error, CustomStringConvertible, Sendable {
    public let code: Int32
    public let message: String
    public let isRetriable: Bool
    public let isFatal: Bool
    /// What was being done when it was raised ("produce", "commit", "connect" ...).
    public let operation: String

    public var description: String { "Kafka \(operation) failed: \(message)" }

    init(code: rd_kafka_resp_err_t, operation: String, message: String? = nil, isRetriable: Bool? = nil, isFatal: Bool = false) {
        self.code = code.rawValue
        self.operation = operation
        self.message = message ?? String(cString: rd_kafka_err2str(code))
        self.isFatal = isFatal
        self.isRetriable = isRetriable ?? KafkaError.retriableCodes.contains(code.rawValue)
    }

    public static func configuration(_ message: String) -> KafkaError {
        KafkaError(code: RD_KAFKA_RESP_ERR__INVALID_ARG, operation: "configure", message: message, isRetriable: false)
    }

    /// A commit or fetch that lost its partitions to a rebalance: the new owner redoes the work.
    public var isRebalance: Bool {
        [
            RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS, RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION,
            RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID, RD_KAFKA_RESP_ERR__NO_OFFSET, RD_KAFKA_RESP_ERR__STATE,
        ]
        .map(\.rawValue).contains(code)
    }

    /// The broker (or librdkafka, before sending) refused this record itself, for its size or
    /// form: sending it again can never succeed, while other records still can.
    public var isRecordRefused: Bool {
        [
            RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE, RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE, RD_KAFKA_RESP_ERR_INVALID_RECORD,
            RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE, RD_KAFKA_RESP_ERR_INVALID_MSG,
        ]
        .map(\.rawValue).contains(code)
    }

    private static let retriableCodes: Set<Int32> = Set(
        [
            RD_KAFKA_RESP_ERR__TRANSPORT, RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN, RD_KAFKA_RESP_ERR__TIMED_OUT,
            RD_KAFKA_RESP_ERR__MSG_TIMED_OUT, RD_KAFKA_RESP_ERR__QUEUE_FULL, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
            RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
            RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION, RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
            RD_KAFKA_RESP_ERR_NOT_COORDINATOR, RD_KAFKA_RESP_ERR__WAIT_COORD, RD_KAFKA_RESP_ERR__RESOLVE,
            RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS,
        ].map(\.rawValue))
}
