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

    /// `message` defaults to librdkafka's text for `code`, `isRetriable` to whether the code is transient.
    init(code: Int32, operation: String, message: String? = nil, isRetriable: Bool? = nil, isFatal: Bool = false) {
        self.code = code
        self.operation = operation
        self.message = message ?? RDKafkaErrorCode.description(code)
        self.isFatal = isFatal
        self.isRetriable = isRetriable ?? RDKafkaErrorCode.retriable.contains(code)
    }

    public static func configuration(_ message: String) -> KafkaError {
        KafkaError(code: RDKafkaErrorCode.invalidArgument, operation: "configure", message: message, isRetriable: false)
    }

    /// A commit or fetch that lost its partitions to a rebalance: the new owner redoes the work.
    public var isRebalance: Bool { RDKafkaErrorCode.rebalance.contains(code) }

    /// The broker (or librdkafka, before sending) refused this record itself, for its size or
    /// form: sending it again can never succeed, while other records still can.
    public var isRecordRefused: Bool { RDKafkaErrorCode.recordRefused.contains(code) }
}
