import Kafka
import Mongo

/// Dead letters the broker refused, kept whole in MongoDB and read back by `archiver replay`.
extension HistoryStore {
    /// Keeps a dead letter's whole message under `ref`; a second attempt overwrites it with the same bytes.
    func keepDeadLetter(_ document: Document, ref: String) async throws {
        try await deadLetterPayloads.bulkWrite([.replaceOne(filter: ["_id": .string(ref)], replacement: document, upsert: true)])
    }

    /// The message a dead-letter stub stands for, rebuilt from what `DeadLetterPublisher` kept.
    func keptDeadLetter(_ ref: String) async throws -> (key: [UInt8]?, value: [UInt8], headers: [KafkaHeader])? {
        guard let doc = try await deadLetterPayloads.findOne(["_id": .string(ref)]), case .binary(let value) = doc["value"] else { return nil }
        var key: [UInt8]?
        if case .binary(let k) = doc["key"] { key = k }
        let headers: [KafkaHeader] = (doc["headers"]?.arrayValue ?? []).compactMap { item in
            guard let h = item.documentValue, let name = h["name"]?.stringValue, case .binary(let v) = h["value"] else { return nil }
            return KafkaHeader(name, v)
        }
        return (key, value, headers)
    }
}
