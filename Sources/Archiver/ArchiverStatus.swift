import Kafka
import Mongo

/// What /readyz reports: are both servers answering, does this instance own partitions, and
/// is it reading them (partitions paused with no outage being waited out are a stall).
public final class ArchiverStatus: Sendable {
    private struct State {
        var mongoReachable = false
        var kafkaReachable = false
        var assignedPartitions = 0
        var pausedPartitions = 0
        var outageInProgress = false
        var lastError: String?
    }
    private let state = Locked(State())

    public init() {}

    public struct Snapshot: Sendable {
        public var mongoReachable: Bool
        public var kafkaReachable: Bool
        public var assignedPartitions: Int
        /// Assigned partitions not being fetched.
        public var pausedPartitions: Int
        /// A retried operation is waiting out an outage: the one time partitions are meant to be paused.
        public var outageInProgress: Bool
        public var lastError: String?
        /// Partitions paused with no outage in progress are never read again: not ready.
        public var stalled: Bool { pausedPartitions > 0 && !outageInProgress }
        public var ready: Bool { mongoReachable && kafkaReachable && assignedPartitions > 0 && !stalled }

        /// The one-line detail of /readyz.
        public var detail: String {
            "mongo=\(mongoReachable ? "up" : "down") kafka=\(kafkaReachable ? "up" : "down") partitions=\(assignedPartitions)"
                + " paused=\(pausedPartitions)\(outageInProgress ? " outage=waiting" : "")\(stalled ? " stalled=paused-without-outage" : "")"
                + (ready ? "" : lastError.map { " last_error=\($0)" } ?? "")
        }
    }

    public var snapshot: Snapshot {
        state.withLock {
            Snapshot(
                mongoReachable: $0.mongoReachable, kafkaReachable: $0.kafkaReachable,
                assignedPartitions: $0.assignedPartitions, pausedPartitions: $0.pausedPartitions,
                outageInProgress: $0.outageInProgress, lastError: $0.lastError)
        }
    }

    func setReachable(mongo: Bool? = nil, kafka: Bool? = nil) {
        state.withLock { s in
            if let mongo { s.mongoReachable = mongo }
            if let kafka { s.kafkaReachable = kafka }
        }
    }

    func setAssigned(_ n: Int) { state.withLock { $0.assignedPartitions = n } }

    func setPartitions(assigned: Int, paused: Int) {
        state.withLock { s in
            s.assignedPartitions = assigned
            s.pausedPartitions = paused
        }
    }

    func setOutageInProgress(_ waiting: Bool) { state.withLock { $0.outageInProgress = waiting } }

    /// The operation succeeded: its own server answers, and so does every server whose failure it
    /// retried (a dead letter kept in MongoDB is a "kafka" operation that can fail on MongoDB).
    func succeeded(_ operation: String, after failures: Set<Server> = []) {
        state.withLock { s in
            for server in failures.union([Server(operation: operation)]) {
                switch server {
                case .mongo: s.mongoReachable = true
                case .kafka: s.kafkaReachable = true
                }
            }
        }
    }

    func failed(_ operation: String, _ error: Error) {
        state.withLock { s in
            switch Server(failing: operation, error) {
            case .mongo: s.mongoReachable = false
            case .kafka: s.kafkaReachable = false
            }
            s.lastError = "\(operation): \(error)"
        }
    }

    /// Which server an operation or a failure belongs to.
    enum Server: Hashable, Sendable {
        case mongo, kafka

        init(operation: String) { self = operation.hasPrefix("mongo") ? .mongo : .kafka }

        /// The error's own server where it names one, else the operation's.
        init(failing operation: String, _ error: Error) {
            switch error {
            case is MongoError, is TransientBulkFailure: self = .mongo
            case is KafkaError, is RefusedDeadLetter: self = .kafka
            default: self.init(operation: operation)
            }
        }
    }
}
