import Archiver
import CMongoc
import Foundation
import Kafka

/// `archiver-bench`: the server limits the archiver is measured against (scripts/bench runs it).
///   archiver-bench mongo URI DATABASE COUNT BATCH [insert|upsert]   raw libmongoc unordered bulks of the drain's
///                                                    history documents: plain inserts, or `$setOnInsert` upserts (the default)
///   archiver-bench kafka BROKERS TOPICS COUNT        raw librdkafka consume rate through the Kafka module
@main
struct Bench {
    static func main() async throws {
        let args = CommandLine.arguments
        switch args.count > 1 ? args[1] : "" {
        case "mongo" where args.count == 6 || (args.count == 7 && ["insert", "upsert"].contains(args[6])):
            try mongo(uri: args[2], database: args[3], count: Int(args[4])!, batch: Int(args[5])!, inserts: args.count == 7 && args[6] == "insert")
        case "kafka" where args.count == 5:
            try await kafka(brokers: args[2], topics: args[3].split(separator: ",").map(String.init), count: Int(args[4])!)
        default:
            FileHandle.standardError.write(Data("usage: archiver-bench mongo URI DB COUNT BATCH [insert|upsert] | kafka BROKERS TOPICS COUNT\n".utf8))
            exit(2)
        }
    }

    /// The baseline the archiver is measured against: libmongoc alone writing the documents a
    /// drain writes, in its mix (of every 3 events, 2 balance changes and 1 payment), built with
    /// bson_append_* directly; per `batch` events one unordered bulk per collection, balance then
    /// payment, of plain inserts (`inserts`) or of `$setOnInsert` upserts on `_id`.
    static func mongo(uri: String, database: String, count: Int, batch: Int, inserts: Bool) throws {
        setenv("MONGOC_DISABLE_SHM", "1", 0)  // as the archiver's MongoClient does
        mongoc_init()
        var error = bson_error_t()
        let client = mongoc_client_new(uri)!
        let balance = mongoc_client_get_collection(client, database, HistoryKind.balance.collection)!
        let payment = mongoc_client_get_collection(client, database, HistoryKind.payment.collection)!
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        // As the archiver writes: unordered bulks, no client-side validation of its own valid documents.
        let bulkOpts = bson_new()!, insertOpts = bson_new()!, upsert = bson_new()!
        bson_append_bool(bulkOpts, "ordered", -1, false)
        bson_append_int32(insertOpts, "validate", -1, 0)
        bson_append_bool(upsert, "upsert", -1, true)
        bson_append_int32(upsert, "validate", -1, 0)
        let start = DispatchTime.now()
        var written = 0
        while written < count {
            let bulks = [balance, payment].map { mongoc_collection_create_bulk_operation_with_opts($0, bulkOpts)! }
            var queued = [0, 0]
            for i in written..<min(count, written + batch) {
                let order = Int64(100_000 + i / 3)
                let isPayment = i % 3 == 2
                let selector = bson_new()!, update = bson_new()!, doc = bson_new()!, source = bson_new()!
                let id = "bench-\(i)-\(UUID().uuidString)"
                bson_append_utf8(inserts ? doc : selector, "_id", -1, id, -1)
                if isPayment {
                    bson_append_int64(doc, "paymentId", -1, order)
                    bson_append_int64(doc, "orderId", -1, order)
                    bson_append_int64(doc, "userId", -1, Int64(i % 5000))
                    bson_append_int64(doc, "amount", -1, 1000)
                    bson_append_utf8(doc, "status", -1, "COMPLETED", -1)
                } else {
                    bson_append_int64(doc, "userId", -1, Int64(i % 5000))
                    bson_append_utf8(doc, "type", -1, "DEDUCT", -1)
                    bson_append_int64(doc, "amount", -1, 1000)
                    bson_append_int64(doc, "balanceBefore", -1, 1_000_000_000)
                    bson_append_int64(doc, "balanceAfter", -1, 999_999_000)
                    bson_append_int64(doc, "orderId", -1, order)
                    bson_append_int64(doc, "paymentId", -1, order)
                }
                bson_append_utf8(doc, "sagaId", -1, "pay-\(order)", -1)
                bson_append_date_time(doc, "occurredAt", -1, now)
                bson_append_date_time(doc, "archivedAt", -1, now)
                bson_append_utf8(source, "topic", -1, isPayment ? "commerce.payment" : "commerce.balance", -1)
                bson_append_int32(source, "partition", -1, 0)
                bson_append_int64(source, "offset", -1, Int64(i))
                bson_append_document(doc, "source", -1, source)
                let bulk = bulks[isPayment ? 1 : 0]
                queued[isPayment ? 1 : 0] += 1
                if inserts {
                    precondition(mongoc_bulk_operation_insert_with_opts(bulk, doc, insertOpts, &error))
                } else {
                    bson_append_document(update, "$setOnInsert", -1, doc)
                    precondition(mongoc_bulk_operation_update_one_with_opts(bulk, selector, update, upsert, &error))
                }
                [selector, update, doc, source].forEach { bson_destroy($0) }
            }
            for (bulk, n) in zip(bulks, queued) {
                defer { mongoc_bulk_operation_destroy(bulk) }
                guard n > 0 else { continue }  // libmongoc refuses to execute an empty bulk
                let reply = bson_new()!
                defer { bson_destroy(reply) }
                if mongoc_bulk_operation_execute(bulk, reply, &error) == 0 {
                    let message = withUnsafeBytes(of: error.message) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                    FileHandle.standardError.write(Data("archiver-bench: bulk write failed: \(message)\n".utf8))
                    exit(1)
                }
            }
            written = min(count, written + batch)
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
        let mode = inserts ? "insert" : "upsert"
        let figures = String(format: "docs=%d batch=%d seconds=%.2f docs_per_s=%.0f", count, batch, seconds, Double(count) / seconds)
        print("mongo_baseline mode=\(mode) \(figures)")
        [bulkOpts, insertOpts, upsert].forEach { bson_destroy($0) }
        [balance, payment].forEach { mongoc_collection_destroy($0) }
        mongoc_client_destroy(client)
    }

    static func kafka(brokers: String, topics: [String], count: Int) async throws {
        var config = KafkaConsumerConfiguration(connection: KafkaConfiguration(brokers: brokers), groupID: "bench-\(UUID())", topics: topics)
        config.sessionTimeoutMs = 6_000
        config.maxPollIntervalMs = 10_000
        let consumer = try KafkaConsumer(configuration: config)
        var seen = 0
        var start: DispatchTime?
        while seen < count {
            let n = try await consumer.poll(maxMessages: 1_000, timeout: .milliseconds(500)).messages.count
            if n > 0 && start == nil { start = .now() }
            seen += n
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start!.uptimeNanoseconds) / 1e9
        print(String(format: "kafka_baseline msgs=%d seconds=%.2f msgs_per_s=%.0f", seen, seconds, Double(seen) / seconds))
        await consumer.close()
    }
}
