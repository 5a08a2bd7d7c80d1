import Events
import Foundation
import Kafka
import Logging
import SQLStore

/// What a relay that starts to lead must learn before it sends anything: which of the rows
/// left in the outbox a predecessor already published. A leader that dies (or loses its
/// lease) between the broker's acknowledgement and the delete leaves such rows behind;
/// sending them again would put every one on its topic twice.
///
/// Where to look is kept beside the outbox: `outbox_offsets` holds, per partition, an offset
/// below which no row still in the outbox can be (written with the deletes, see
/// `OutboxRelay.deletePublished`). The new leader reads each partition of the rows' topics
/// from there to its end and matches events by id. With no predecessor left sending, what it
/// finds is all there is: the rest was never published.
public struct OutboxTakeover {
    /// Rows found on their topics, and the offsets after them per partition.
    var published: Set<Int64> = []
    var nextOffsets: [TopicPartition: Int64] = [:]

    /// How long the read may take before the leader gives up and tries again.
    public static let readTimeout: Duration = .seconds(15)

    static let migration = SQLMigration(
        "runtime-v3",
        """
        CREATE TABLE outbox_offsets (topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL,
                                     PRIMARY KEY (topic, partition));
        """)

    /// Reads what the rows left in `node`'s outbox have on their topics. Nothing to read when
    /// the outbox is empty (every clean stop empties it).
    static func find(node: ServiceNode, connection: KafkaConfiguration, timeout: Duration, logger: Logger) async throws -> OutboxTakeover {
        let (rows, starts) = try await node.database.read { db in
            let rows = try db.rows("SELECT seq, topic, event_id FROM outbox").map { row in
                (try row["seq"] as Int64, try row["topic"] as String, try row["event_id"] as String)
            }
            var starts: [TopicPartition: Int64] = [:]
            if !rows.isEmpty {
                for row in try db.rows("SELECT topic, partition, next_offset FROM outbox_offsets") {
                    starts[TopicPartition(topic: try row["topic"], partition: Int32(try row["partition"] as Int64))] = try row["next_offset"]
                }
            }
            return (rows, starts)
        }
        guard !rows.isEmpty else { return OutboxTakeover() }
        var seqs: [String: Int64] = [:]
        for (seq, _, id) in rows { seqs[id] = seq }
        let candidates = try await KafkaPartitionReader.read(
            topics: Set(rows.map(\.1)).sorted(), from: starts, connection: connection, timeout: timeout, logger: logger
        ) { [seqs] value in
            (try? CommerceEvent.decode(value)).flatMap { seqs[$0.id] }
        }
        // An id is only a claim: the row counts as published when the message is the row, byte for byte.
        let values = try await node.database.read { db in
            try candidates.map { _, seq in try db.row("SELECT value FROM outbox WHERE seq = ?", seq).map { try $0["value"] as Data } }
        }
        var found = OutboxTakeover()
        for ((entry, seq), value) in zip(candidates, values) where value.map({ Array($0) == entry.value }) == true {
            found.published.insert(seq)
            found.nextOffsets[entry.partition] = max(found.nextOffsets[entry.partition] ?? 0, entry.offset + 1)
        }
        logger.info(
            "rows left in the outbox that are already on their topics are not sent again",
            metadata: [
                "service": "\(node.name)", "rows": "\(rows.count)", "alreadyPublished": "\(found.published.count)",
            ])
        return found
    }

    /// Records, with a delete, where a later leader starts to look.
    static func record(_ offsets: [TopicPartition: Int64], _ db: any SQLDatabase) throws {
        for (partition, offset) in offsets {
            try db.execute(
                """
                INSERT INTO outbox_offsets (topic, partition, next_offset) VALUES (?, ?, ?)
                ON CONFLICT (topic, partition) DO UPDATE SET next_offset = excluded.next_offset
                """, partition.topic, Int64(partition.partition), offset)
        }
    }
}
