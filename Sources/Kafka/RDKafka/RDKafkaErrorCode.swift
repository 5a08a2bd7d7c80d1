import CRdKafka

/// librdkafka's error codes as the Swift side holds them (`KafkaError.code`), and what they mean
/// to a caller.
enum RDKafkaErrorCode {
    static var noError: Int32 { RD_KAFKA_RESP_ERR_NO_ERROR.rawValue }
    static var fail: Int32 { RD_KAFKA_RESP_ERR__FAIL.rawValue }
    static var fatal: Int32 { RD_KAFKA_RESP_ERR__FATAL.rawValue }
    static var queueFull: Int32 { RD_KAFKA_RESP_ERR__QUEUE_FULL.rawValue }
    static var timedOut: Int32 { RD_KAFKA_RESP_ERR__TIMED_OUT.rawValue }
    static var invalidArgument: Int32 { RD_KAFKA_RESP_ERR__INVALID_ARG.rawValue }
    static var allBrokersDown: Int32 { RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN.rawValue }
    static var maxPollExceeded: Int32 { RD_KAFKA_RESP_ERR__MAX_POLL_EXCEEDED.rawValue }

    /// librdkafka's text for a code.
    static func description(_ code: Int32) -> String { String(cString: rd_kafka_err2str(rd_kafka_resp_err_t(code))) }

    /// A commit or fetch that lost its partitions to a rebalance: the new owner redoes the work.
    static let rebalance: Set<Int32> = Set(
        [
            RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS, RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION,
            RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID, RD_KAFKA_RESP_ERR__NO_OFFSET, RD_KAFKA_RESP_ERR__STATE,
        ].map(\.rawValue))

    /// The broker (or librdkafka, before sending) refused this record itself, for its size or form.
    static let recordRefused: Set<Int32> = Set(
        [
            RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE, RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE, RD_KAFKA_RESP_ERR_INVALID_RECORD,
            RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE, RD_KAFKA_RESP_ERR_INVALID_MSG,
        ].map(\.rawValue))

    /// Codes after which an idempotent producer id can send nothing more.
    static let fenced: Set<Int32> = Set(
        [RD_KAFKA_RESP_ERR__FATAL, RD_KAFKA_RESP_ERR_PRODUCER_FENCED, RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH, RD_KAFKA_RESP_ERR__FENCED].map(
            \.rawValue))

    static let retriable: Set<Int32> = Set(
        [
            RD_KAFKA_RESP_ERR__TRANSPORT, RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN, RD_KAFKA_RESP_ERR__TIMED_OUT,
            RD_KAFKA_RESP_ERR__MSG_TIMED_OUT, RD_KAFKA_RESP_ERR__QUEUE_FULL, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
            RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
            RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION, RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
            RD_KAFKA_RESP_ERR_NOT_COORDINATOR, RD_KAFKA_RESP_ERR__WAIT_COORD, RD_KAFKA_RESP_ERR__RESOLVE,
            RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS,
        ].map(\.rawValue))
}

extension KafkaError {
    /// For the calls in this folder, which hold librdkafka's codes as C values.
    init(code: rd_kafka_resp_err_t, operation: String, message: String? = nil, isRetriable: Bool? = nil, isFatal: Bool = false) {
        self.init(code: code.rawValue, operation: operation, message: message, isRetriable: isRetriable, isFatal: isFatal)
    }
}
