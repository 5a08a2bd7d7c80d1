import Foundation
import GRDB
import Kafka
import Logging

/// Publishes a node's outbox in commit order with the idempotent producer, deleting rows
/// only once the broker has acknowledged them (in batches, see `deleteInterval`). A crash
/// between the two re-sends them on restart; consumers drop the duplicates by event id.
///
/// Up to `maxInFlight` batches are handed to the producer before the first is acknowledged:
/// a row committed while a batch waits for the broker goes out at once instead of after that
/// wait (tens of ms per saga hop on a busy broker). librdkafka's idempotent producer keeps them
/// in order. If a batch fails (the broker unreachable until the message timeout), the relay
/// waits for the batches after it and sends again from the first row not acknowledged, so rows
/// after the failure may arrive twice, and before the re-sent ones: consumers drop duplicates,
/// and in these sagas a later event of one aggregate is always caused by an earlier one that
/// was already delivered, so none overtakes its cause.
final class OutboxRelay: Sendable {
    let node: ServiceNode
    let producer: KafkaProducer
    let logger: Logger
    let batchSize = 500
    static let maxInFlight = 4

    init(node: ServiceNode, producer: KafkaProducer, logger: Logger) {
        self.node = node
        self.producer = producer
        self.logger = logger
    }

    /// Published rows are deleted in one transaction at most this often (or when the relay has
    /// nothing else to do), not after every send: the delete waited for the service's single
    /// writer on every saga hop. Rows published but not deleted yet are skipped by `seq`; a
    /// restart publishes them again, and consumers drop the duplicates by event id.
    static let deleteInterval: Duration = .milliseconds(500)

    private enum Event: Sendable {
        case wake
        case sent(batch: Int, [Result<DeliveryReport, KafkaError>])
        case stopping
    }

    /// What this relay has handed over, published and deleted.
    struct Progress {
        /// The last seq handed to the producer.
        var sent: Int64 = 0
        /// The last seq the broker acknowledged, with every row before it.
        var published: Int64 = 0
        /// Rows up to this seq are deleted.
        var deleted: Int64 = 0
        var lastDelete = ContinuousClock.now
        /// Batches handed over and not yet settled, oldest first: id and last seq.
        var inFlight: [(batch: Int, last: Int64)] = []
        /// Outcomes that came in ahead of an older batch's.
        var outcomes: [Int: [Result<DeliveryReport, KafkaError>]] = [:]
        var nextBatch = 0
        /// A batch failed: nothing new is handed over until every batch in flight has settled.
        var failure: KafkaError?
    }

    /// Publishes on every wake-up until the node finishes the wake-up stream, then once more.
    /// A broker that does not take the rows is waited for (they stay in the outbox); anything
    /// else (the database failing, a fatal producer error) ends the relay with that error.
    func run(stopping: @escaping @Sendable () -> Bool) async throws {
        let (events, sink) = AsyncStream.makeStream(of: Event.self)
        let wakeups = Task { [node] in
            for await _ in node.relayWakeups { sink.yield(.wake) }
            sink.yield(.stopping)
        }
        defer { wakeups.cancel() }
        var progress = Progress()
        var finishing = false
        for await event in events {
            switch event {
            case .wake: break
            case .stopping: finishing = true
            case .sent(let batch, let results): progress.outcomes[batch] = results
            }
            try settle(&progress)
            if progress.inFlight.isEmpty, let failure = progress.failure {
                progress.failure = nil
                progress.sent = progress.published
                logger.warning(
                    "outbox not published yet; it stays until the broker takes it", metadata: ["service": "\(node.name)", "error": "\(failure)"])
                // Stopping must not wait for the broker: what stays is published by the next process.
                if finishing || stopping() { return }
                try? await Task.sleep(for: .milliseconds(500))
            }
            if finishing {
                if progress.inFlight.isEmpty { break }
                continue
            }
            if progress.failure == nil { try await handOver(&progress, sink) }
            // The periodic wake-up (every second) comes here too, so an idle relay deletes as well.
            if ContinuousClock.now - progress.lastDelete >= Self.deleteInterval { try await deletePublished(&progress) }
        }
        // The final pass: what was committed until now, one batch at a time, without waiting for an absent broker.
        while true {
            let rows = try await unpublished(after: progress.sent)
            guard let last = rows.last?.0 else { break }
            do { _ = try await producer.send(rows.map(\.1)) } catch let error as KafkaError where !error.isFatal {
                logger.warning(
                    "outbox not published yet; it stays until the broker takes it", metadata: ["service": "\(node.name)", "error": "\(error)"])
                break
            }
            progress.sent = last
            progress.published = last
        }
        try await deletePublished(&progress)
    }

    /// Takes the settled batches off the front of `inFlight`, in order.
    private func settle(_ progress: inout Progress) throws {
        while let oldest = progress.inFlight.first, let results = progress.outcomes.removeValue(forKey: oldest.batch) {
            progress.inFlight.removeFirst()
            if let error = results.lazy.compactMap({ if case .failure(let e) = $0 { e } else { nil } }).first {
                if error.isFatal { throw error }
                progress.failure = progress.failure ?? error
            } else if progress.failure == nil {
                progress.published = oldest.last
            }
        }
    }

    /// Hands the rows committed since the last batch to the producer, up to `maxInFlight` batches.
    private func handOver(_ progress: inout Progress, _ sink: AsyncStream<Event>.Continuation) async throws {
        while progress.inFlight.count < Self.maxInFlight {
            let rows = try await unpublished(after: progress.sent)
            guard let last = rows.last?.0 else { return }
            let batch = progress.nextBatch
            progress.nextBatch += 1
            progress.inFlight.append((batch, last))
            progress.sent = last
            let records = rows.map(\.1)
            Task { [producer] in sink.yield(.sent(batch: batch, await producer.sendEach(records))) }
            if rows.count < batchSize { return }
        }
    }

    private func unpublished(after seq: Int64) async throws -> [(Int64, KafkaRecord)] {
        try await node.database.read { [batchSize] db in
            try Row.fetchAll(
                db.cachedStatement(sql: "SELECT seq, topic, key, value FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?"),
                arguments: [seq, batchSize]
            )
            .map { row -> (Int64, KafkaRecord) in
                let value: Data = row["value"]
                return (row["seq"], KafkaRecord(topic: row["topic"], key: Array((row["key"] as String).utf8), value: Array(value)))
            }
        }
    }

    private func deletePublished(_ progress: inout Progress) async throws {
        progress.lastDelete = .now
        guard progress.published > progress.deleted else { return }
        try await node.database.write { [published = progress.published] db in
            try db.cachedStatement(sql: "DELETE FROM outbox WHERE seq <= ?").execute(arguments: [published])
        }
        progress.deleted = progress.published
    }
}
