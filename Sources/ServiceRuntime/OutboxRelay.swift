import Foundation
import GRDB
import Kafka
import Logging

/// Publishes a node's outbox in commit order with the idempotent producer, deleting rows
/// only once the broker has acknowledged them. A crash between the two re-sends them on
/// restart; consumers drop the duplicates by event id.
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

    /// Drains on every wake-up until the node finishes the wake-up stream, then once more.
    /// A broker that does not take the rows is waited for (they stay in the outbox); anything
    /// else (the database failing, a fatal producer error) ends the relay with that error.
    func run(stopping: @escaping @Sendable () -> Bool) async throws {
        for await _ in node.relayWakeups { try await drain(finalPass: false, stopping: stopping) }
        try await drain(finalPass: true, stopping: stopping)
    }

    private func drain(finalPass: Bool, stopping: () -> Bool) async throws {
        while true {
            let rows = try await node.database.read { [batchSize] db in
                try Row.fetchAll(db, sql: "SELECT seq, topic, key, value FROM outbox ORDER BY seq LIMIT ?", arguments: [batchSize])
                    .map { row -> (Int64, KafkaRecord) in
                        let value: Data = row["value"]
                        return (row["seq"], KafkaRecord(topic: row["topic"], key: Array((row["key"] as String).utf8), value: Array(value)))
                    }
            }
            guard let last = rows.last?.0 else { return }
            do {
                _ = try await producer.send(rows.map(\.1))
            } catch let error as KafkaError where !error.isFatal {
                logger.warning("outbox not published yet; it stays until the broker takes it", metadata: ["service": "\(node.name)", "error": "\(error)"])
                // Stopping must not wait for the broker: what stays is published by the next process.
                if finalPass || stopping() { return }
                try? await Task.sleep(for: .milliseconds(500))
                continue
            }
            try await node.database.write { db in try db.execute(sql: "DELETE FROM outbox WHERE seq <= ?", arguments: [last]) }
            if rows.count < batchSize { return }
        }
    }
}
