import Foundation
import Logging

/// High watermarks of partitions a consumer has paused, read from the broker. A paused
/// partition is not fetched, so the consumer's cached watermark freezes and its lag with it,
/// which is exactly when an operator needs it. The probe is a handle of its own, outside any
/// group, that fetches each partition from a given offset at or below its end: every fetch
/// response carries the partition's high watermark. (ListOffsets is not used: some brokers
/// answer "latest" wrongly; see `../shared/servers.md`.) One caller at a time: the reads
/// share one assignment.
public final class KafkaWatermarkProbe: Sendable {
    private let client: RDKafkaClient

    public init(connection: KafkaConfiguration, logger: Logger = Logger(label: "kafka.watermarks")) throws {
        var settings = connection.settings([
            // Required by librdkafka for a consumer; the probe never joins nor commits.
            "group.id": "watermark-probe",
            "enable.auto.commit": "false",
            "enable.auto.offset.store": "false",
            "allow.auto.create.topics": "false",
            "fetch.wait.max.ms": "10",
            // One message at most per partition and fetch: the watermark is what is wanted.
            "max.partition.fetch.bytes": "1",
            "queued.max.messages.kbytes": "64",
        ])
        settings["enable.partition.eof"] = "true"
        client = try RDKafkaClient(kind: .consumer, settings: settings, logger: logger)
        // Errors and logs reach the queue the probe's polls serve, rather than piling up.
        client.redirectPollsToConsumer()
    }

    deinit { client.closeConsumer() }

    /// Each partition's high watermark, fetched from `starts` (offsets at or below the ends:
    /// the consumer's positions, or ends read before). A partition the broker did not answer
    /// for within `timeout` is absent.
    public func highWatermarks(from starts: [TopicPartition: Int64], timeout: Duration) async -> [TopicPartition: Int64] {
        guard !starts.isEmpty else { return [:] }
        return (try? await offload { [client] in Self.read(client, starts, timeout) }) ?? [:]
    }

    private static func read(_ client: RDKafkaClient, _ starts: [TopicPartition: Int64], _ timeout: Duration) -> [TopicPartition: Int64] {
        let deadline = ContinuousClock.now + timeout
        guard (try? client.assign(starts)) != nil else { return [:] }
        defer { client.unassign() }
        var waiting = Set(starts.keys)
        var answered: [TopicPartition: Int64] = [:]
        var topicNames = TopicNames()
        while !waiting.isEmpty {
            let wait = (deadline - .now).rdKafkaMilliseconds
            guard wait > 0 else { break }
            // A message or the end: either way a fetch response for it arrived, with its watermark.
            let partition: TopicPartition
            switch client.consumerPoll(timeoutMs: min(wait, 100), topicNames: &topicNames, content: false) {
            case .message(let m): partition = m.topicPartition
            case .error(let error):
                guard let end = error.endOfPartition else { continue }
                partition = end
            case nil: continue
            }
            guard waiting.remove(partition) != nil,
                let high = client.cachedHighWatermark(topic: partition.topic, partition: partition.partition)
            else { continue }
            answered[partition] = high
        }
        return answered
    }
}
