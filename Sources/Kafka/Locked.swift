import Synchronization

/// A value behind a lock that closures can capture (a `Mutex` itself cannot be copied into one).
/// Public, and here, because Kafka is the lowest module that both the clients and the archiver
/// stand on: one lock type for both.
public final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>

    public init(_ value: Value) { mutex = Mutex(value) }

    /// Runs `body` with the value, holding the lock; throws what `body` throws, nothing else.
    public func withLock<Result, Failure: Error>(
        _ body: (inout sending Value) throws(Failure) -> sending Result
    ) throws(Failure) -> sending Result {
        try mutex.withLock(body)
    }
}
