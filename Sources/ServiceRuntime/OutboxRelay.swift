import Foundation
import GRDB
import Kafka
import Logging

/// Publishes a node's outbox in commit order with the idempotent producer, deleting rows
/// only once the broker has acknowledged them (in batches, see `deleteInterval`). A crash
/// between the two re-sends them on restart; consumers drop the duplicates by event id.
final class OutboxRelay: Sendable {
    let node: ServiceNode
    let producer: KafkaProducer
    let logger: Logger
    let batchSize = 500

    init(node: ServiceNode, producer: KafkaProducer, logger: Logger) {
        self.node = node
        self.producer = producer
        self.logger = logger
    }

    /// Published rows are deleted in one transaction at most this often (or when the relay has
    /// nothing else to do), not after every send: the delete waited for the service's single
    /// writer on every saga hop. Rows published but not deleted yet are skipped by `seq`; a
    /// restart publishes them again, and consumers drop the duplicates by event id.
    static let deleteInterval: Duration = .milliseconds(500)

    /// Drains on every wake-up until the node finishes the wake-up stream, then once more.
    /// A broker that does not take the rows is waited for (they stay in the outbox); anything
    /// else (the database failing, a fatal producer error) ends the relay with that error.
    func run(stopping: @escaping @Sendable () -> Bool) async throws {
        var progress = Progress()
        for await _ in node.relayWakeups { try await drain(&progress, finalPass: false, stopping: stopping) }
        try await drain(&progress, finalPass: true, stopping: stopping)
        try await deletePublished(&progress)
    }

    /// What this relay has published and deleted.
    struct Progress {
        /// The last seq the broker acknowledged.
        var published: Int64 = 0
        /// Rows up to this seq are deleted.
        var deleted: Int64 = 0
        var lastDelete = ContinuousClock.now
    }

    private func drain(_ progress: inout Progress, finalPass: Bool, stopping: () -> Bool) async throws {
        while true {
            let rows = try await node.database.read { [batchSize, after = progress.published] db in
                try Row.fetchAll(db.cachedStatement(sql: "SELECT seq, topic, key, value FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?"),
                                 arguments: [after, batchSize])
                    .map { row -> (Int64, KafkaRecord) in
                        let value: Data = row["value"]
                        return (row["seq"], KafkaRecord(topic: row["topic"], key: Array((row["key"] as String).utf8), value: Array(value)))
                    }
            }
            guard let last = rows.last?.0 else {
                if progress.published > progress.deleted { try await deletePublished(&progress) }
                return
            }
            do {
                _ = try await producer.send(rows.map(\.1))
            } catch let error as KafkaError where !error.isFatal {
                logger.warning("outbox not published yet; it stays until the broker takes it", metadata: ["service": "\(node.name)", "error": "\(error)"])
                // Stopping must not wait for the broker: what stays is published by the next process.
                if finalPass || stopping() { return }
                try? await Task.sleep(for: .milliseconds(500))
                continue
            }
            progress.published = last
            if ContinuousClock.now - progress.lastDelete >= Self.deleteInterval { try await deletePublished(&progress) }
            if rows.count < batchSize { return }
        }
    }

    private func deletePublished(_ progress: inout Progress) async throws {
        progress.lastDelete = .now
        guard progress.published > progress.deleted else { return }
        try await node.database.write { [published = progress.published] db in
            try db.cachedStatement(sql: "DELETE FROM outbox WHERE seq <= ?").execute(arguments: [published])
        }
        progress.deleted = progress.published
    }
}
