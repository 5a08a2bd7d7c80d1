import Foundation

/// The delivery reports of one enqueued batch: `outcomes()` returns once all are in, whether
/// they came before it was called or after.
public final class Deliveries: @unchecked Sendable {
    private let lock = NSLock()
    private var results: [Result<DeliveryReport, KafkaError>?]
    private var remaining: Int
    private var waiter: CheckedContinuation<[Result<DeliveryReport, KafkaError>], Never>?

    /// What a failed delivery is reported as.
    let failure: @Sendable (Int32) -> KafkaError

    init(count: Int, failure: @escaping @Sendable (Int32) -> KafkaError) {
        results = Array(repeating: nil, count: count)
        remaining = count
        self.failure = failure
    }

    /// Each record's outcome, in the order enqueued. Call it once.
    public func outcomes() async -> [Result<DeliveryReport, KafkaError>] {
        await withCheckedContinuation { continuation in
            lock.lock()
            guard remaining == 0 else {
                waiter = continuation
                lock.unlock()
                return
            }
            lock.unlock()
            continuation.resume(returning: results.map { $0! })
        }
    }

    func complete(_ index: Int, _ result: Result<DeliveryReport, KafkaError>) {
        lock.lock()
        results[index] = result
        remaining -= 1
        let waiting = remaining == 0 ? waiter : nil
        if waiting != nil { waiter = nil }
        lock.unlock()
        waiting?.resume(returning: results.map { $0! })
    }
}
