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
            guard !rows.isEmpty else { return }
            let results = await producer.sendEach(rows.map(\.1))
            // Acknowledged rows go, so a retry never publishes them again. A row the broker refuses
            // for itself (too large) can never be published: it is set aside in rejected_events
            // (partition -1, offset = -seq), logged, and the outbox moves on.
            var done: [Int64] = [], refused: [(Int64, KafkaRecord, KafkaError)] = [], failure: KafkaError?
            for ((seq, record), result) in zip(rows, results) {
                switch result {
                case .success: done.append(seq)
                case .failure(let error) where error.isRecordRefused: refused.append((seq, record, error))
                case .failure(let error): failure = failure ?? error
                }
            }
            if !done.isEmpty || !refused.isEmpty {
                try await node.database.write { [done, refused] db in
                    for (seq, record, error) in refused {
                        try db.execute(
                            sql: """
                                INSERT OR IGNORE INTO rejected_events (topic, partition, "offset", key, value, error, rejected_at) VALUES (?, -1, ?, ?, ?, ?, ?)
                                """,
                            arguments: [
                                record.topic, -seq, record.key.map { String(decoding: $0, as: UTF8.self) }, Data(record.value),
                                "outgoing event refused by the broker: \(error.message)", Int64(Date().timeIntervalSince1970 * 1000),
                            ])
                    }
                    let seqs = done + refused.map(\.0)
                    try db.execute(
                        sql: "DELETE FROM outbox WHERE seq IN (\(seqs.map { _ in "?" }.joined(separator: ",")))", arguments: StatementArguments(seqs))
                }
                for (seq, record, error) in refused {
                    logger.error(
                        "outgoing event refused by the broker; kept in rejected_events",
                        metadata: [
                            "service": "\(node.name)", "topic": "\(record.topic)", "seq": "\(seq)", "bytes": "\(record.value.count)",
                            "error": "\(error.message)",
                        ])
                }
            }
            if let failure {
                if failure.isFatal { throw failure }
                logger.warning(
                    "outbox not published yet; it stays until the broker takes it", metadata: ["service": "\(node.name)", "error": "\(failure)"])
                // Stopping must not wait for the broker: what stays is published by the next process.
                if finalPass || stopping() { return }
                try? await Task.sleep(for: .milliseconds(500))
                continue
            }
            if rows.count < batchSize { return }
        }
    }
}
