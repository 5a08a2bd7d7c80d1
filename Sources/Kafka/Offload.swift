import Dispatch

private let blockingQueue = DispatchQueue(label: "kafka-blocking", attributes: .concurrent)

/// Runs a blocking librdkafka call on a dispatch queue, off Swift's cooperative pool.
func offload<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        blockingQueue.async { continuation.resume(with: Result { try body() }) }
    }
}
