import Events
import Kafka
import Logging
import Mongo

/// Publishes a batch's dead letters so that none is lost, none is sent twice by its retries and
/// none can stop the archiver. Records that fail for a transient reason are retried alone. A record the broker
/// refuses for itself (too large, malformed) is kept whole in MongoDB and replaced by a stub the
/// broker accepts, whose headers say where the whole message is: `archiver replay` reads it there.
struct DeadLetterPublisher: Sendable {
    var producer: KafkaProducer
    var store: HistoryStore
    var retrier: Retrier
    var metrics: ArchiverMetrics
    var logger: Logger

    /// Smaller stand-ins, tried in turn while the broker keeps refusing.
    static let stubSizes: [(value: Int, key: Int)] = [(64 * 1_024, 1_024), (0, 64)]
    /// MongoDB's document limit is 16 MiB: a larger message keeps its first 15 MiB, flagged.
    static let maxKeptBytes = 15 * 1_024 * 1_024

    func publish(_ letters: [DeadLetter], to topic: String) async throws {
        var records = letters.map { $0.record(topic: topic) }
        var stubLevel = [Int](repeating: -1, count: letters.count)
        var pending = Array(letters.indices)
        try await retrier.run("kafka dead-letter") {
            while !pending.isEmpty {
                let results = await producer.sendEach(pending.map { records[$0] })
                // Delivered records are done for good before anything else can throw: never resent.
                let failures = zip(pending, results).compactMap { index, result -> (Int, KafkaError)? in
                    if case .failure(let error) = result { (index, error) } else { nil }
                }
                pending = failures.map(\.0)
                var retriable: KafkaError?
                for (index, error) in failures {
                    let level = stubLevel[index] + 1
                    guard error.isRecordRefused, level < Self.stubSizes.count else {
                        // Transient, or even the smallest stand-in refused (a misconfigured broker or
                        // topic): wait as for an outage; the letter is kept and nothing is committed.
                        retriable = error
                        continue
                    }
                    let letter = letters[index]
                    let sha256 = letter.sha256
                    if level == 0 { try await keep(letter, sha256: sha256, refusal: error) }
                    stubLevel[index] = level
                    records[index] = letter.stub(
                        topic: topic, valueBytes: Self.stubSizes[level].value, keyBytes: Self.stubSizes[level].key, sha256: sha256)
                }
                if let retriable { throw RefusedDeadLetter(underlying: retriable) }
            }
        }
    }

    /// The whole message in MongoDB, once per original position (a second attempt overwrites it with the same bytes).
    private func keep(_ letter: DeadLetter, sha256: String, refusal: KafkaError) async throws {
        let value = letter.message.value
        let truncated = value.count > Self.maxKeptBytes
        var document: Document = [
            "_id": .string(letter.payloadRef),
            "value": .binary(Array(value.prefix(Self.maxKeptBytes))), "truncated": .bool(truncated),
            "key": letter.message.key.map { .binary(Array($0.prefix(64 * 1_024))) } ?? .null,
            "headers": .array(
                DeadLetter.withoutOurHeaders(letter.message.headers).prefix(100).map {
                    .document(["name": .string($0.name), "value": .binary(Array($0.value.prefix(64 * 1_024)))])
                }),
            "size": .int64(Int64(value.count)), "sha256": .string(sha256),
            "kind": .string(letter.kind), "reason": .string(Text.utf8Prefix(letter.reason, maxBytes: 1_000)),
            "origin": letter.origin.document, "keptAt": .datetime(Timestamp.nowMs()),
        ]
        document.append("refusedBecause", .string(refusal.message))
        try await store.keepDeadLetter(document, ref: letter.payloadRef)
        metrics.deadLetterKept(kind: letter.kind)
        logger.error(
            "dead letter refused by the broker: kept whole in MongoDB, a stub goes to the dead-letter topic",
            metadata: [
                "origin": "\(letter.origin)", "size": "\(value.count)", "sha256": "\(sha256)",
                "payloadRef": "\(letter.payloadRef)", "error": "\(refusal.message)",
            ])
    }
}

/// A dead letter still refused after every fallback, or a transient produce failure: retried.
struct RefusedDeadLetter: Error, CustomStringConvertible {
    var underlying: KafkaError
    var description: String { "dead letter not accepted: \(underlying)" }
}
