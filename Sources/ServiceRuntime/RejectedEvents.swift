import Foundation
import SQLStore

/// What a service could neither apply nor publish, kept in its `rejected_events` with the
/// reason, never dropped: consumed messages (at their topic, partition and offset) and outgoing
/// events the broker refused (partition -1, offset = -seq). Keeping one twice changes nothing.
enum RejectedEvents {
    static func keep(
        topic: String, partition: Int64, offset: Int64, key: String?, value: Data, reason: String, at now: Int64, _ db: any SQLDatabase
    ) throws {
        try db.execute(
            """
            INSERT INTO rejected_events (topic, partition, "offset", key, value, error, rejected_at) VALUES (?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT DO NOTHING
            """, topic, partition, offset, key.map(printable), value, printable(reason), now)
    }

    /// Text as PostgreSQL takes it: a key or an error message may hold a NUL, which it refuses in TEXT.
    private static func printable(_ text: String) -> String {
        text.contains("\0") ? text.replacingOccurrences(of: "\0", with: "\\0") : text
    }
}
