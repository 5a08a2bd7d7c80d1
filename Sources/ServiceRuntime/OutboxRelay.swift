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
    func run() async {
        for await _ in node.relayWakeups { await drain(finalPass: false) }
        await drain(finalPass: true)
    }

    private func drain(finalPass: Bool) async {
        while true {
            do {
                let rows = try await node.database.read { [batchSize] db in
                    try Row.fetchAll(db, sql: "SELECT seq, topic, key, value FROM outbox ORDER BY seq LIMIT ?", arguments: [batchSize])
                        .map { row -> (Int64, KafkaRecord) in
                            let value: Data = row["value"]
                            return (row["seq"], KafkaRecord(topic: row["topic"], key: Array((row["key"] as String).utf8), value: Array(value)))
                        }
                }
                guard let last = rows.last?.0 else { return }
                _ = try await producer.send(rows.map(\.1))
                try await node.database.write { db in try db.execute(sql: "DELETE FROM outbox WHERE seq <= ?", arguments: [last]) }
                if rows.count < batchSize { return }
            } catch {
                logger.warning("outbox not published yet; it stays until the broker takes it", metadata: ["service": "\(node.name)", "error": "\(error)"])
                if finalPass { return }
                try? await Task.sleep(for: .milliseconds(500))
            }
        }
    }
}
