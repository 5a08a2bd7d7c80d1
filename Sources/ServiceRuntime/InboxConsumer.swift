import Events
import Foundation
import GRDB
import Kafka
import Logging

/// Feeds a node's service the events of its topics, exactly once in effect: each batch is
/// applied in one local transaction that also records every event id in the inbox, so a
/// redelivered event is a no-op; offsets are committed only after that transaction.
final class InboxConsumer: Sendable {
    let node: ServiceNode
    let consumer: KafkaConsumer
    let logger: Logger

    init(node: ServiceNode, connection: KafkaConfiguration, groupPrefix: String, logger: Logger) throws {
        self.node = node
        self.logger = logger
        var configuration = KafkaConsumerConfiguration(
            connection: connection, groupID: "\(groupPrefix)\(node.name)",
            topics: node.service.topics.map { node.topicPrefix + $0 })
        configuration.sessionTimeoutMs = 6_000
        consumer = try KafkaConsumer(configuration: configuration, logger: logger)
    }

    /// Consumes until `stopped`. A fatal poll error or a failed transaction (the database is
    /// broken: a DomainError never gets here) ends it with that error, after leaving the group.
    func run(until stopped: @escaping @Sendable () -> Bool) async throws {
        defer { logger.debug("consumer stopped", metadata: ["service": "\(node.name)"]) }
        do {
            while !stopped() { try await consumeOnce() }
        } catch {
            await consumer.close()
            throw error
        }
        await consumer.close()
    }

    /// One poll; a batch is applied in one transaction, then its offsets are committed.
    private func consumeOnce() async throws {
        let messages: [KafkaMessage]
        do {
            messages = try await consumer.poll(maxMessages: 200, timeout: .milliseconds(200)).messages
        } catch let error as KafkaError where !error.isFatal {
            logger.warning("poll failed, retrying", metadata: ["service": "\(node.name)", "error": "\(error)"])
            try? await Task.sleep(for: .seconds(1))
            return
        }
        guard !messages.isEmpty else { return }
        let service = node.service
        let types = try await node.database.write { [node, logger] db in
            try Self.apply(messages, service: service, node: node, db: db, logger: logger)
        }
        node.committed(types)
        var offsets: [TopicPartition: Int64] = [:]
        for m in messages { offsets[m.topicPartition] = max(offsets[m.topicPartition] ?? 0, m.offset + 1) }
        do { try await consumer.commit(offsets) } catch {
            // Harmless: what was applied is in the inbox, so a redelivery does nothing.
            logger.warning("offset commit failed; the batch may be redelivered", metadata: ["error": "\(error)"])
        }
    }

    /// Applies a batch; returns the types of the events it wrote to the outbox.
    static func apply(_ messages: [KafkaMessage], service: any DomainService, node: ServiceNode, db: Database, logger: Logger) throws -> [String] {
        var emitted: [String] = []
        let now = Int64(Date().timeIntervalSince1970 * 1_000)
        for message in messages {
            let event: CommerceEvent
            do { event = try CommerceEvent.decode(message.value) } catch {
                try reject(message, because: "not a commerce event: \(error)", db: db, now: now, logger: logger)
                continue
            }
            if try Bool.fetchOne(db, sql: "SELECT 1 FROM inbox WHERE event_id = ?", arguments: [event.id]) == true { continue }
            do {
                try db.inSavepoint {
                    let out = try service.handle(event, in: db, node: node)
                    try Outbox.append(out, prefix: node.topicPrefix, db)
                    emitted += out.map(\.type)
                    return .commit
                }
            } catch let error as DomainError {
                // An event this service cannot apply: kept with its reason, never dropped silently.
                try reject(message, because: "\(event.type) \(event.id): \(error)", db: db, now: now, logger: logger)
            }
            try db.execute(sql: "INSERT INTO inbox (event_id, type, processed_at) VALUES (?, ?, ?)", arguments: [event.id, event.type, now])
        }
        return emitted
    }

    private static func reject(_ message: KafkaMessage, because reason: String, db: Database, now: Int64, logger: Logger) throws {
        logger.error(
            "event rejected",
            metadata: ["topic": "\(message.topic)", "partition": "\(message.partition)", "offset": "\(message.offset)", "reason": "\(reason)"])
        try db.execute(
            sql: """
                INSERT OR IGNORE INTO rejected_events (topic, partition, "offset", key, value, error, rejected_at) VALUES (?, ?, ?, ?, ?, ?, ?)
                """, arguments: [message.topic, message.partition, message.offset, message.keyString, Data(message.value), reason, now])
    }
}

/// An event that names something impossible (missing fields, unknown ids): a bug upstream,
/// not a business failure. It is recorded in `rejected_events` and the consumer moves on.
public struct DomainError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
