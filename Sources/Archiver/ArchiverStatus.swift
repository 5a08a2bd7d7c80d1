import Foundation
import Kafka

/// What /readyz reports: are both servers answering, and does this instance own partitions.
public final class ArchiverStatus: Sendable {
    private struct State {
        var mongoReachable = false
        var kafkaReachable = false
        var assignedPartitions = 0
        var lastError: String?
    }
    private let state = Locked(State())

    public init() {}

    public struct Snapshot: Sendable {
        public var mongoReachable: Bool
        public var kafkaReachable: Bool
        public var assignedPartitions: Int
        public var lastError: String?
        public var ready: Bool { mongoReachable && kafkaReachable && assignedPartitions > 0 }
    }

    public var snapshot: Snapshot {
        state.withLock {
            Snapshot(
                mongoReachable: $0.mongoReachable, kafkaReachable: $0.kafkaReachable,
                assignedPartitions: $0.assignedPartitions, lastError: $0.lastError)
        }
    }

    func setReachable(mongo: Bool? = nil, kafka: Bool? = nil) {
        state.withLock { s in
            if let mongo { s.mongoReachable = mongo }
            if let kafka { s.kafkaReachable = kafka }
        }
    }

    func setAssigned(_ n: Int) { state.withLock { $0.assignedPartitions = n } }

    func succeeded(_ operation: String) {
        state.withLock { s in
            if operation.hasPrefix("mongo") { s.mongoReachable = true } else { s.kafkaReachable = true }
        }
    }

    func failed(_ operation: String, _ error: Error) {
        state.withLock { s in
            if operation.hasPrefix("mongo") { s.mongoReachable = false } else { s.kafkaReachable = false }
            s.lastError = "\(operation): \(error)"
        }
    }
}

/// A value behind a lock that closures can capture.
final class Locked<Value: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value
    init(_ value: Value) { self.value = value }
    func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
