import Foundation
import Logging
import SQLStore

/// How long a service keeps the records that only guard against repeats, and how often it
/// prunes older ones. An inbox row must outlive every redelivery of its event (the topics'
/// retention, 7 days by default on Kafka); an Idempotency-Key, every retry a client makes
/// (Stripe keeps them 24 hours). Published outbox rows are deleted by the relay as it goes,
/// and `rejected_events` is kept for operators: neither is pruned here.
public struct Retention: Sendable {
    public var inbox: Duration
    public var idempotencyKeys: Duration
    public var interval: Duration

    public init(inbox: Duration = .seconds(7 * 24 * 3600), idempotencyKeys: Duration = .seconds(24 * 3600), interval: Duration = .seconds(600)) {
        self.inbox = inbox
        self.idempotencyKeys = idempotencyKeys
        self.interval = interval
    }

    /// Rows deleted per transaction: a short one, so that pruning never holds up the writers.
    static let chunk = 2_000

    /// Deletes what is older than the retention, a chunk per transaction; returns how many
    /// rows of each table went. Replicas pruning at once delete disjoint or the same rows:
    /// either is harmless.
    @discardableResult
    public func prune(_ node: ServiceNode, now: Date = Date()) async throws -> (inbox: Int, idempotencyKeys: Int) {
        let ms = Int64(now.timeIntervalSince1970 * 1_000)
        let inbox = try await Self.deleteAll(
            node, "DELETE FROM inbox WHERE event_id IN (SELECT event_id FROM inbox WHERE processed_at < ? LIMIT ?) RETURNING 1",
            ms - Self.ms(self.inbox))
        // 0: stored before keys had a time (runtime-v4); their age is unknown, so they are kept.
        let keys = try await Self.deleteAll(
            node,
            "DELETE FROM idempotency_keys WHERE key IN (SELECT key FROM idempotency_keys WHERE created_at > 0 AND created_at < ? LIMIT ?) RETURNING 1",
            ms - Self.ms(idempotencyKeys))
        return (inbox, keys)
    }

    private static func deleteAll(_ node: ServiceNode, _ sql: String, _ cutoff: Int64) async throws -> Int {
        var total = 0
        while true {
            let deleted = try await node.database.write { db in try db.rows(sql, cutoff, chunk).count }
            total += deleted
            if deleted < chunk { return total }
        }
    }

    private static func ms(_ duration: Duration) -> Int64 {
        duration.components.seconds * 1_000 + duration.components.attoseconds / 1_000_000_000_000_000
    }

    /// Prunes every node once per `interval`, the first time one interval after the start (a
    /// process that is starting has better things to do); a failure is logged and tried next time.
    func run(_ nodes: [ServiceNode], logger: Logger) async {
        while !Task.isCancelled {
            try? await Task.sleep(for: interval)
            if Task.isCancelled { return }
            for node in nodes {
                do {
                    let pruned = try await prune(node)
                    if pruned.inbox + pruned.idempotencyKeys > 0 {
                        logger.info(
                            "pruned old inbox rows and Idempotency-Keys",
                            metadata: ["service": "\(node.name)", "inbox": "\(pruned.inbox)", "idempotencyKeys": "\(pruned.idempotencyKeys)"])
                    }
                } catch {
                    logger.warning("pruning failed; trying again later", metadata: ["service": "\(node.name)", "error": "\(error)"])
                }
            }
        }
    }
}
