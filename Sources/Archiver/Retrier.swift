import Kafka
import Logging
import Mongo

/// Retries an operation that failed because a server is unreachable, with capped exponential
/// backoff, for as long as it takes: an outage is never a reason to drop or dead-letter anything.
/// While it waits, `waiter` keeps the consumer in its group (see `Archiver.waitPaused`).
struct Retrier: Sendable {
    var initialMs: Int
    var maxMs: Int
    var logger: Logger
    var metrics: ArchiverMetrics
    var status: ArchiverStatus
    /// Stops retrying once this says so (shutdown grace exhausted); the batch is then abandoned uncommitted.
    var shouldGiveUp: @Sendable () -> Bool
    var waiter: @Sendable (Duration) async -> Void

    struct Abandoned: Error, CustomStringConvertible {
        var operation: String
        var description: String { "gave up on \(operation): shutting down while a server is unreachable; nothing was committed" }
    }

    func run<T: Sendable>(_ operation: String, _ body: () async throws -> T) async throws -> T {
        var attempt = 0
        while true {
            do {
                let result = try await body()
                if attempt > 0 { logger.info("recovered", metadata: ["operation": "\(operation)", "attempts": "\(attempt + 1)"]) }
                status.succeeded(operation)
                return result
            } catch  where Retrier.isTransient(error) {
                status.failed(operation, error)
                metrics.retried(operation)
                if shouldGiveUp() { throw Abandoned(operation: operation) }
                // One warning per outage, then quiet retries: the log stays readable over a long outage.
                if attempt == 0 { logger.warning("server unreachable, retrying", metadata: ["operation": "\(operation)", "error": "\(error)"]) }
                let delay = max(1, min(maxMs, initialMs << min(attempt, 16)))
                attempt += 1
                await waiter(.milliseconds(Int.random(in: delay / 2...delay)))
            }
        }
    }

    static func isTransient(_ error: Error) -> Bool {
        switch error {
        case let e as MongoError: e.isTransient
        case let e as KafkaError: e.isRetriable && !e.isFatal
        case is TransientBulkFailure, is RefusedDeadLetter: true
        default: false
        }
    }
}

/// A bulk write in which some items failed for a transient reason: the whole (idempotent) bulk is retried.
struct TransientBulkFailure: Error, CustomStringConvertible {
    var description: String
}
