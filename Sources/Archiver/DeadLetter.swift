import Crypto
import Events
import Kafka

/// Where a dead letter's event was first consumed.
public struct Origin: Sendable, Hashable, CustomStringConvertible {
    public var topic: String
    public var partition: Int32
    public var offset: Int64
    public var description: String { "\(topic)[\(partition)]@\(offset)" }
}

/// A dead letter as contract §6 has it: the original key, value and headers, untouched, plus ours.
struct DeadLetter: Sendable {
    var message: KafkaMessage
    var origin: Origin
    var kind: String
    var reason: String
    var attempts: Int
    var failedAtMs: Int64

    static let kinds = ["decode", "schema", "rejected"]

    static let ourHeaders: Set<String> = [
        DeadLetterHeader.originalTopic, DeadLetterHeader.originalPartition, DeadLetterHeader.originalOffset,
        DeadLetterHeader.errorKind, DeadLetterHeader.errorMessage, DeadLetterHeader.attempts, DeadLetterHeader.failedAt,
        DeadLetterHeader.originalSize, DeadLetterHeader.originalSHA256, DeadLetterHeader.payloadRef,
    ]

    /// The event's own headers, as they were before it was dead-lettered.
    static func withoutOurHeaders(_ headers: [KafkaHeader]) -> [KafkaHeader] { headers.filter { !ourHeaders.contains($0.name) } }

    var headers: [KafkaHeader] {
        [
            KafkaHeader(DeadLetterHeader.originalTopic, origin.topic),
            KafkaHeader(DeadLetterHeader.originalPartition, String(origin.partition)),
            KafkaHeader(DeadLetterHeader.originalOffset, String(origin.offset)),
            KafkaHeader(DeadLetterHeader.errorKind, kind),
            KafkaHeader(DeadLetterHeader.errorMessage, Text.utf8Prefix(reason, maxBytes: 1_000)),
            KafkaHeader(DeadLetterHeader.attempts, String(attempts)),
            KafkaHeader(DeadLetterHeader.failedAt, Timestamp.format(failedAtMs)),
        ]
    }

    func record(topic: String) -> KafkaRecord {
        KafkaRecord(topic: topic, key: message.key, value: message.value, headers: Self.withoutOurHeaders(message.headers) + headers)
    }

    /// Where the whole message is kept when the broker refuses it: one place per original
    /// position, so a letter dead-lettered again (a failed replay) lands on the same document.
    var payloadRef: String { "\(origin.topic)/\(origin.partition)/\(origin.offset)" }

    /// The value's SHA-256 in lowercase hex: a stub's `x-original-sha256`, against which the
    /// whole message kept in MongoDB can be checked.
    var sha256: String {
        let digits = Array("0123456789abcdef".utf8)
        return String(decoding: SHA256.hash(data: message.value).flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 0xf)]] }, as: UTF8.self)
    }

    /// A stand-in the broker accepts: at most `valueBytes` of the value, the key cut to
    /// `keyBytes`, none of the original headers; ours say how big the original was and where it is.
    func stub(topic: String, valueBytes: Int, keyBytes: Int, sha256: String) -> KafkaRecord {
        KafkaRecord(
            topic: topic, key: message.key.map { Array($0.prefix(keyBytes)) }, value: Array(message.value.prefix(valueBytes)),
            headers: headers + [
                KafkaHeader(DeadLetterHeader.originalSize, String(message.value.count)),
                KafkaHeader(DeadLetterHeader.originalSHA256, sha256),
                KafkaHeader(DeadLetterHeader.payloadRef, payloadRef),
            ])
    }

    /// The origin and attempt count a dead letter carries, or nil when its headers are not ours.
    static func parse(_ message: KafkaMessage) -> (origin: Origin, attempts: Int, failedAtMs: Int64?)? {
        guard let topic = message.header(DeadLetterHeader.originalTopic)?.stringValue,
            let partition = message.header(DeadLetterHeader.originalPartition).flatMap({ Int32($0.stringValue) }),
            let offset = message.header(DeadLetterHeader.originalOffset).flatMap({ Int64($0.stringValue) })
        else { return nil }
        let attempts = message.header(DeadLetterHeader.attempts).flatMap { Int($0.stringValue) } ?? 1
        let failedAt = message.header(DeadLetterHeader.failedAt).flatMap { Timestamp.parse($0.stringValue) }
        return (Origin(topic: topic, partition: partition, offset: offset), attempts, failedAt)
    }
}
