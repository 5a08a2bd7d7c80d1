import Foundation
import Logging

/// Reads whole partitions from given offsets to their ends, outside any group: for a writer
/// that must learn which of its records a predecessor already put there before sending them
/// again (an outbox relay taking over after a crash).
public enum KafkaPartitionReader {
    /// One message as the reader saw it: where it is and what it holds.
    public struct Entry: Sendable {
        public var partition: TopicPartition
        public var offset: Int64
        public var value: [UInt8]
    }

    /// The messages `match` recognizes (by value), with what it made of each, of every partition
    /// of `topics`, from `starts` (the next offset to read;
    /// the partition's first message where absent, or where the offset no longer exists) up
    /// to the end each partition had when the reader reached it. A topic that does not exist
    /// has nothing. Throws when the ends are not all reached within `timeout` (no broker, or
    /// too much to read), so that a caller never takes a partial read for a whole one.
    public static func read<Match: Sendable>(
        topics: [String], from starts: [TopicPartition: Int64], connection: KafkaConfiguration, timeout: Duration,
        logger: Logger = Logger(label: "kafka.reader"), match: @escaping @Sendable ([UInt8]) -> Match?
    ) async throws -> [(entry: Entry, match: Match)] {
        try await offload {
            try readBlocking(topics: topics, starts: starts, connection: connection, timeout: timeout, logger: logger, match: match)
        }
    }

    private static func readBlocking<Match>(
        topics: [String], starts: [TopicPartition: Int64], connection: KafkaConfiguration, timeout: Duration, logger: Logger,
        match: ([UInt8]) -> Match?
    ) throws -> [(entry: Entry, match: Match)] {
        let deadline = ContinuousClock.now + timeout
        var settings = connection.settings([
            // Required by librdkafka for a consumer; the reader never joins nor commits.
            "group.id": "partition-reader",
            "enable.auto.commit": "false",
            "enable.auto.offset.store": "false",
            "auto.offset.reset": "earliest",
            "allow.auto.create.topics": "false",
            "fetch.wait.max.ms": "20",
            "queued.max.messages.kbytes": "2048",
        ])
        // What the read means, whatever a configuration file says: to the end of each partition,
        // past any transaction left open by someone else.
        settings["enable.partition.eof"] = "true"
        settings["isolation.level"] = "read_uncommitted"
        let client = try RDKafkaClient(kind: .consumer, settings: settings, logger: logger)
        defer { client.closeConsumer() }
        var partitions: [TopicPartition] = []
        for topic in topics {
            partitions += try client.partitions(of: topic, timeoutMs: milliseconds(until: deadline))
        }
        guard !partitions.isEmpty else { return [] }
        var starts = Dictionary(uniqueKeysWithValues: partitions.map { ($0, starts[$0] ?? RDKafkaOffset.beginning) })
        try client.assign(starts)
        var open = Set(partitions)
        // Partitions that have yielded a message: their starts are known to exist.
        var reached: Set<TopicPartition> = []
        var entries: [(entry: Entry, match: Match)] = []
        var topicNames = TopicNames()
        while !open.isEmpty {
            let wait = milliseconds(until: deadline)
            guard wait > 0 else {
                throw KafkaError(
                    code: RDKafkaErrorCode.timedOut, operation: "read",
                    message: "the ends of \(open.sorted { $0.description < $1.description }) were not reached within \(timeout)")
            }
            // A start past a partition's end (the broker lost messages, or the topic was made
            // anew) is not out of range on every broker: some answer nothing, forever.
            let pastTheEnd = open.subtracting(reached).filter { p in
                starts[p]! >= 0 && client.cachedHighWatermark(topic: p.topic, partition: p.partition).map { starts[p]! > $0 } == true
            }
            if !pastTheEnd.isEmpty {
                let described = pastTheEnd.map { p in
                    "\(p) from \(starts[p]!), end \(client.cachedHighWatermark(topic: p.topic, partition: p.partition) ?? -1)"
                }
                logger.warning("offsets past the partitions' ends; reading them from their first message", metadata: ["partitions": "\(described)"])
                for p in pastTheEnd { starts[p] = RDKafkaOffset.beginning }
                try client.assign(starts.filter { open.contains($0.key) })
            }
            switch client.consumerPoll(timeoutMs: min(wait, 100), topicNames: &topicNames) {
            case .message(let m):
                if let found = match(m.value) { entries.append((Entry(partition: m.topicPartition, offset: m.offset, value: m.value), found)) }
                starts[m.topicPartition] = m.offset + 1  // where a new assignment resumes
                reached.insert(m.topicPartition)
            case .error(let error):
                guard let partition = error.partition else { continue }
                if error.endOfPartition != nil {
                    open.remove(partition)
                } else {
                    // Retried inside librdkafka; the deadline bounds how long.
                    logger.debug("partition read error", metadata: ["partition": "\(partition)", "code": "\(error.code)"])
                }
            case nil: continue
            }
        }
        return entries
    }

    private static func milliseconds(until deadline: ContinuousClock.Instant) -> Int32 { (deadline - .now).rdKafkaMilliseconds }
}
