import Events
import Kafka

/// Where a dead letter's event was first consumed.
public struct Origin: Sendable, Hashable, CustomStringConvertible {
    public var topic: String
    public var partition: Int32
    public var offset: Int64
    public var description: String { "\(topic)[\(partition)]@\(offset)" }
}

/// Dead letters as contract §6 has them: the original key and value, untouched, plus headers.
enum DeadLetter {
    static let kinds = ["decode", "schema", "rejected"]

    static let ourHeaders: Set<String> = [DeadLetterHeader.originalTopic, DeadLetterHeader.originalPartition, DeadLetterHeader.originalOffset,
                                          DeadLetterHeader.errorKind, DeadLetterHeader.errorMessage, DeadLetterHeader.attempts, DeadLetterHeader.failedAt]

    /// The event's own headers, as they were before it was dead-lettered.
    static func withoutOurHeaders(_ headers: [KafkaHeader]) -> [KafkaHeader] { headers.filter { !ourHeaders.contains($0.name) } }

    static func record(topic: String, value: [UInt8], key: [UInt8]?, headers: [KafkaHeader], origin: Origin,
                       kind: String, reason: String, attempts: Int, failedAtMs: Int64) -> KafkaRecord {
        var all = withoutOurHeaders(headers)
        all += [
            KafkaHeader(DeadLetterHeader.originalTopic, origin.topic),
            KafkaHeader(DeadLetterHeader.originalPartition, String(origin.partition)),
            KafkaHeader(DeadLetterHeader.originalOffset, String(origin.offset)),
            KafkaHeader(DeadLetterHeader.errorKind, kind),
            KafkaHeader(DeadLetterHeader.errorMessage, String(reason.prefix(1_000))),
            KafkaHeader(DeadLetterHeader.attempts, String(attempts)),
            KafkaHeader(DeadLetterHeader.failedAt, Timestamp.format(failedAtMs)),
        ]
        return KafkaRecord(topic: topic, key: key, value: value, headers: all)
    }

    /// The origin and attempt count a dead letter carries, or nil when its headers are not ours.
    static func parse(_ message: KafkaMessage) -> (origin: Origin, attempts: Int, failedAtMs: Int64?)? {
        guard let topic = message.header(DeadLetterHeader.originalTopic)?.stringValue,
              let partition = message.header(DeadLetterHeader.originalPartition).flatMap({ Int32($0.stringValue) }),
              let offset = message.header(DeadLetterHeader.originalOffset).flatMap({ Int64($0.stringValue) }) else { return nil }
        let attempts = message.header(DeadLetterHeader.attempts).flatMap { Int($0.stringValue) } ?? 1
        let failedAt = message.header(DeadLetterHeader.failedAt).flatMap { Timestamp.parse($0.stringValue) }
        return (Origin(topic: topic, partition: partition, offset: offset), attempts, failedAt)
    }
}
