import Foundation
import Testing

@testable import Mongo

// Against the real Mongo-wire server started by scripts/services (MONGO_URI, default mongodb://127.0.0.1:21017).
let mongoURI = ProcessInfo.processInfo.environment["MONGO_URI"] ?? "mongodb://127.0.0.1:21017"

func freshDatabase() throws -> MongoDatabase {
    try MongoClient(uri: mongoURI).database("t_\(UUID().uuidString.prefix(8).lowercased())")
}

@Suite("Mongo against the real server")
struct MongoIntegrationTests {
    @Test func insertFindCountUpdateAggregateDelete() async throws {
        let db = try freshDatabase()
        let c = db.collection("items")
        let docs: [Document] = (1...5).map {
            [
                "_id": .string("id\($0)"), "user": .int64(Int64($0 % 2)), "amount": .int64(Int64($0 * 100)),
                "at": .datetime(Int64($0) * 1_000),
            ]
        }
        #expect(try await c.insertMany(docs).inserted == 5)
        let found = try await c.find(["user": .int64(1)], options: FindOptions(sort: ["at": .int32(-1)], limit: 2, projection: ["amount": .int32(1)]))
        #expect(found.map { $0["_id"]?.stringValue } == ["id5", "id3"])
        #expect(found[0]["user"] == nil, "projection keeps only _id and amount")
        #expect(found[0]["amount"]?.int64Value == 500)
        #expect(try await c.count(["at": .document(["$gte": .datetime(3_000)])]) == 3)
        try await c.updateOne(filter: ["_id": .string("id1")], update: ["$set": .document(["amount": .int64(1)])])
        #expect(try await c.findOne(["_id": .string("id1")])?["amount"]?.int64Value == 1)
        let sums = try await c.aggregate([
            ["$match": .document(["user": .int64(0)])],
            ["$group": .document(["_id": .string("$user"), "total": .document(["$sum": .string("$amount")])])],
        ])
        #expect(sums.first?["total"]?.int64Value == 600)
        #expect(try await c.deleteMany(["user": .int64(0)]) == 2)
        #expect(try await c.count() == 3)
        try await db.drop()
    }

    @Test func upsertingTheSameDocumentTwiceLeavesOneUnchanged() async throws {
        let db = try freshDatabase()
        let c = db.collection("history")
        func upserts(_ archivedAt: Int64) -> [WriteModel] {
            (0..<50).map {
                .updateOne(
                    filter: ["_id": .string("e\($0)")],
                    update: ["$setOnInsert": .document(["n": .int64(Int64($0)), "archivedAt": .datetime(archivedAt)])], upsert: true)
            }
        }
        #expect(try await c.bulkWrite(upserts(1)).upserted == 50)
        let again = try await c.bulkWrite(upserts(2))
        #expect(again.upserted == 0 && again.matched == 50)
        #expect(try await c.count() == 50)
        #expect(try await c.findOne(["_id": .string("e7")])?["archivedAt"] == .datetime(1))
        try await db.drop()
    }

    @Test func aDuplicateKeyIsCode11000AndTheRestOfAnUnorderedBulkIsApplied() async throws {
        let db = try freshDatabase()
        let c = db.collection("dups")
        try await c.insertOne(["_id": .string("a")])
        await #expect { try await c.insertOne(["_id": .string("a")]) } throws: { ($0 as? MongoError)?.isDuplicateKey == true }
        do {
            _ = try await c.bulkWrite([.insertOne(["_id": .string("b")]), .insertOne(["_id": .string("a")]), .insertOne(["_id": .string("c")])])
            Issue.record("a duplicate went through")
        } catch MongoError.bulkWrite(let failure) {
            #expect(failure.errors.map(\.index) == [1])
            #expect(failure.errors.map(\.code) == [11000])
            #expect(failure.result.inserted == 2)
        }
        #expect(try await c.count() == 3)
        try await db.drop()
    }

    @Test func indexesAreCreatedWithTheirFields() async throws {
        let db = try freshDatabase()
        let c = db.collection("indexed")
        try await db.createCollection("indexed")
        try await db.createCollection("indexed")  // a second time is fine
        try await c.createIndexes([IndexModel(keys: ["userId": .int32(1), "occurredAt": .int32(-1)]), IndexModel(keys: ["sagaId": .int32(1)])])
        let keys = try await c.listIndexes().compactMap { $0["key"]?.documentValue?.keys }
        #expect(keys.contains(["userId", "occurredAt"]))
        #expect(keys.contains(["sagaId"]))
        #expect(try await db.collectionNames().contains("indexed"))
        try await db.drop()
    }

    @Test func integersAreReadTolerantlyAndWrittenAsInt64() async throws {
        let db = try freshDatabase()
        let c = db.collection("ints")
        try await c.insertOne(["_id": .int64(1), "small": .int64(42), "big": .int64(1 << 40)])
        let doc = try #require(try await c.findOne(["_id": .int64(1)]))
        #expect(doc["small"]?.int64Value == 42)
        #expect(doc["big"]?.int64Value == 1 << 40)
        #expect(BSON.double(3).int64Value == 3 && BSON.double(3.5).int64Value == nil)
        try await db.drop()
    }

    @Test func anUnreachableServerIsAConnectionErrorWithinTheTimeout() async throws {
        let client = try MongoClient(uri: "mongodb://127.0.0.1:1", serverSelectionTimeoutMs: 1_000)
        let started = Date()
        await #expect { try await client.ping() } throws: { error in
            guard case MongoError.connection = error else { return false }
            return (error as! MongoError).isTransient
        }
        #expect(Date().timeIntervalSince(started) < 10)
    }

    @Test func aBadURIIsInvalidAndPasswordsAreMasked() throws {
        #expect { try MongoClient(uri: "mongo://nope") } throws: { error in
            guard case MongoError.invalid(let message) = error else { return false }
            return message.contains("mongo://nope")
        }
        #expect(try MongoClient(uri: "mongodb://app:s3cret@127.0.0.1:27017").redactedURI == "mongodb://app:***@127.0.0.1:27017")
        // An unescaped '@' inside the password: everything up to the last '@' is credentials.
        #expect(try MongoClient(uri: "mongodb://app:p@ss@127.0.0.1:27017").redactedURI == "mongodb://app:***@127.0.0.1:27017")
        #expect(MongoClient.redact("mongodb://app:s3/cr?et@db:27017/history") == "mongodb://app:***@db:27017/history")
        #expect(MongoClient.redact("mongodb:/app:s3cret@db") == "***@db", "no '://': everything before the '@'")
        #expect(
            MongoClient.redact("mongodb://db/?tls=true&tlsCertificateKeyFilePassword=s3cret&w=1")
                == "mongodb://db/?tls=true&tlsCertificateKeyFilePassword=***&w=1")
    }

    @Test func aWriteConcernErrorFailsTheWholeBulkEvenWithPerItemErrors() {
        let reply: Document = [
            "nInserted": .int32(1),
            "writeErrors": .array([.document(["index": .int32(1), "code": .int32(11000), "errmsg": "E11000 duplicate key"])]),
            "writeConcernErrors": .array([.document(["code": .int32(64), "errmsg": "waiting for replication timed out"])]),
        ]
        let error = MongoError.fromBulkReply(reply, .server(code: 64, message: "waiting for replication timed out", labels: []))
        #expect(error.isTransient, "\(error)")
        guard case .bulkWrite = error else { return }
        Issue.record("a write-concern error must not be read as per-item failures: \(error)")
    }
}
