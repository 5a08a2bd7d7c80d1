import Dispatch
import Synchronization

/// A `Mutex` that closures can capture (a `Mutex` itself cannot be copied into one).
final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    init(_ value: Value) { mutex = Mutex(value) }
    func withLock<R: Sendable>(_ body: (inout sending Value) -> sending R) -> R { mutex.withLock(body) }
}

extension String {
    /// A NUL-terminated C buffer filled in by librdkafka.
    init(cBuffer: [CChar]) {
        self = String(decoding: cBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

private let blockingQueue = DispatchQueue(label: "kafka-blocking", attributes: .concurrent)

/// Runs a blocking librdkafka call on a dispatch queue, off Swift's cooperative pool.
func offload<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        blockingQueue.async { continuation.resume(with: Result { try body() }) }
    }
}
