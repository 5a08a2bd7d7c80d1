import CMongoc
import Foundation
import Kafka

/// `archiver-bench`: the server limits the archiver is measured against (scripts/bench runs it).
///   archiver-bench mongo URI DATABASE COUNT BATCH   raw libmongoc unordered bulk upserts of history documents
///   archiver-bench kafka BROKERS TOPICS COUNT        raw librdkafka consume rate through the Kafka module
@main
struct Bench {
    static func main() async throws {
        let args = CommandLine.arguments
        switch args.count > 1 ? args[1] : "" {
        case "mongo" where args.count == 6:
            try mongo(uri: args[2], database: args[3], count: Int(args[4])!, batch: Int(args[5])!)
        case "kafka" where args.count == 5:
            try await kafka(brokers: args[2], topics: args[3].split(separator: ",").map(String.init), count: Int(args[4])!)
        default:
            FileHandle.standardError.write(Data("usage: archiver-bench mongo URI DB COUNT BATCH | kafka BROKERS TOPICS COUNT\n".utf8))
            exit(2)
        }
    }

    /// The baseline the archiver must reach 0.95x of: libmongoc alone, documents built with
    /// bson_append_* directly, one unordered bulk of `$setOnInsert` upserts per `batch`.
    static func mongo(uri: String, database: String, count: Int, batch: Int) throws {
        setenv("MONGOC_DISABLE_SHM", "1", 0)  // as the archiver's MongoClient does
        mongoc_init()
        var error = bson_error_t()
        let client = mongoc_client_new(uri)!
        let collection = mongoc_client_get_collection(client, database, "balance_history")!
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let upsert = bson_new()!
        bson_append_bool(upsert, "upsert", -1, true)
        let start = DispatchTime.now()
        var written = 0
        while written < count {
            let bulk = mongoc_collection_create_bulk_operation_with_opts(collection, nil)!
            for i in written..<min(count, written + batch) {
                let selector = bson_new()!, update = bson_new()!, doc = bson_new()!, source = bson_new()!
                let id = "bench-\(i)-\(UUID().uuidString)"
                bson_append_utf8(selector, "_id", -1, id, -1)
                bson_append_int64(doc, "userId", -1, Int64(i % 5000))
                bson_append_utf8(doc, "type", -1, "DEDUCT", -1)
                bson_append_int64(doc, "amount", -1, 1000)
                bson_append_int64(doc, "balanceBefore", -1, 1_000_000)
                bson_append_int64(doc, "balanceAfter", -1, 999_000)
                bson_append_int64(doc, "orderId", -1, Int64(i))
                bson_append_int64(doc, "paymentId", -1, Int64(i))
                bson_append_utf8(doc, "sagaId", -1, "pay-\(i)", -1)
                bson_append_date_time(doc, "occurredAt", -1, now)
                bson_append_date_time(doc, "archivedAt", -1, now)
                bson_append_utf8(source, "topic", -1, "commerce.balance", -1)
                bson_append_int32(source, "partition", -1, 0)
                bson_append_int64(source, "offset", -1, Int64(i))
                bson_append_document(doc, "source", -1, source)
                bson_append_document(update, "$setOnInsert", -1, doc)
                precondition(mongoc_bulk_operation_update_one_with_opts(bulk, selector, update, upsert, &error))
                [selector, update, doc, source].forEach { bson_destroy($0) }
            }
            let reply = bson_new()!
            precondition(mongoc_bulk_operation_execute(bulk, reply, &error) != 0, "bulk failed")
            bson_destroy(reply)
            mongoc_bulk_operation_destroy(bulk)
            written = min(count, written + batch)
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
        print(String(format: "mongo_baseline docs=%d batch=%d seconds=%.2f docs_per_s=%.0f", count, batch, seconds, Double(count) / seconds))
        mongoc_collection_destroy(collection)
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
