import Kafka
import Logging
import Mongo

/// Retries an operation that failed because a server is unreachable, with capped exponential
/// backoff, for as long as it takes: an outage is never a reason to drop or dead-letter anything.
/// While it waits, `outage.wait` keeps the consumer in its group with its partitions paused
/// (see `Archiver.waitPaused`); whatever ends the wait (success, a lasting error, giving up at
/// shutdown), `outage.end` runs once, so what the wait paused is resumed whichever call met the outage.
struct Retrier: Sendable {
    var initialMs: Int
    var maxMs: Int
    var logger: Logger
    var metrics: ArchiverMetrics
    var status: ArchiverStatus
    /// Stops retrying once this says so (shutdown grace exhausted); the batch is then abandoned uncommitted.
    var shouldGiveUp: @Sendable () -> Bool
    var outage: Outage

    /// How an outage is waited out, and how it is ended.
    struct Outage: Sendable {
        var wait: @Sendable (Duration) async -> Void
        var end: @Sendable () async -> Void

        /// Sleeps between attempts; nothing to undo (replay, tests).
        static let sleep = Outage(wait: { try? await Task.sleep(for: $0) }, end: {})
    }

    struct Abandoned: Error, CustomStringConvertible {
        var operation: String
        var description: String { "gave up on \(operation): shutting down while a server is unreachable; nothing was committed" }
    }

    func run<T: Sendable>(_ operation: String, _ body: () async throws -> T) async throws -> T {
        var waited = false
        do {
            let result = try await attempts(operation, waited: &waited, body)
            if waited { await outage.end() }
            return result
        } catch {
            if waited { await outage.end() }
            throw error
        }
    }

    private func attempts<T: Sendable>(_ operation: String, waited: inout Bool, _ body: () async throws -> T) async throws -> T {
        var attempt = 0
        var failed: Set<ArchiverStatus.Server> = []
        while true {
            do {
                let result = try await body()
                if attempt > 0 { logger.info("recovered", metadata: ["operation": "\(operation)", "attempts": "\(attempt + 1)"]) }
                status.succeeded(operation, after: failed)
                return result
            } catch  where Retrier.isTransient(error) {
                failed.insert(ArchiverStatus.Server(failing: operation, error))
                status.failed(operation, error)
                metrics.retried(operation)
                if shouldGiveUp() { throw Abandoned(operation: operation) }
                // One warning per outage, then quiet retries: the log stays readable over a long outage.
                if attempt == 0 { logger.warning("server unreachable, retrying", metadata: ["operation": "\(operation)", "error": "\(error)"]) }
                let delay = max(1, min(maxMs, initialMs << min(attempt, 16)))
                attempt += 1
                waited = true
                await outage.wait(.milliseconds(Int.random(in: delay / 2...delay)))
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
