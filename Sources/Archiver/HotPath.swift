import Kafka
import Mongo

/// The archiver's per-event work without servers: decode, plan, and the history documents'
/// BSON. `archiver run` does exactly this between a poll and its bulk writes; `Benchmarks/`
/// measures it here.
public enum HotPath {
    /// Runs one batch through decode → plan → BSON and returns the BSON bytes produced.
    public static func encode(_ messages: [KafkaMessage], archivedAtMs: Int64 = 0, kinds: HistoryKinds = .builtIn) -> Int {
        let plan = BatchPlanner.plan(messages.map { Inbound.decode($0, kinds: kinds) }, known: [:], kinds: kinds)
        return BSONWriter.withScratch { bson in
            var bytes = 0
            for (kind, writes) in zip(kinds.all, plan.writes) {
                for write in writes {
                    bson.reset()
                    HistoryDocument.write(write, of: kind, archivedAtMs: archivedAtMs, into: &bson)
                    bytes += bson.byteCount
                }
            }
            return bytes
        }
    }
}
