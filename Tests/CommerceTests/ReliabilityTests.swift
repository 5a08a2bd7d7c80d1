import Events
import Foundation
import GRDB
import Kafka
import TestSupport
import Testing

/// The outbox and inbox under a crash, and the simulation's invariants under injected faults.
@Suite("commerce reliability")
struct ReliabilityTests {
    @Test(arguments: Backend.allCases) func aCrashBetweenCommitAndPublishLosesNothingAndDoesNothingTwice(backend: Backend) async throws {
        let s = try await CommerceScenario(backend: backend, crashAfterCommit: "commerce.stock.decreased")
        let product = try await s.shop(stock: 10, quantity: 2)
        let order = try await s.order(product: product, quantity: 2)
        try await s.expectCrashedOnPurpose(after: "committing commerce.stock.decreased")
        try await s.restartServices()
        #expect(try await s.settledOrder(order) == "PLACED", "the committed event was published after the restart")
        #expect(try await s.int("/products/\(product)", "stock") == 8, "the redelivered order request was not applied twice")
        await s.finish()
    }

    /// The other crash window: the broker acknowledged the events, the outbox still has them.
    /// The restarted relay finds them on their topics and does not send them again. Refused
    /// orders first put events on every partition of the product topic and have them deleted
    /// (and the offsets after them recorded), so the restarted relay's read starts from recorded
    /// offsets, right before the event it must find.
    @Test(arguments: Backend.allCases) func aCrashBetweenPublishAndDeletePublishesNothingTwice(backend: Backend) async throws {
        let s = try await CommerceScenario(backend: backend, crashAfterPublish: "commerce.stock.decreased")
        let product = try await s.shop(stock: 10, quantity: 2)
        for _ in 0..<5 {
            let refused = try await s.order(product: product, quantity: 11)
            #expect(try await s.settledOrder(refused) == "CANCELLED")
        }
        // Published, deleted, and the offsets after them recorded for the product topic: the
        // restarted relay's read can start there.
        let productTopic = s.prefix + Topic.product
        let recorded = try await eventually(30) {
            try await s.read("product") { db in
                let left = try db.rows("SELECT count(*) AS n FROM outbox").first.map { try $0["n"] as Int64 } ?? -1
                let offsets =
                    try db.rows("SELECT count(*) AS n FROM outbox_offsets WHERE topic = ?", productTopic).first.map { try $0["n"] as Int64 } ?? 0
                return left == 0 && offsets > 0
            }
        }
        #expect(recorded, "the product service's outbox was not emptied with its offsets recorded")
        #expect(s.services.process.isRunning, "\(s.services.output)")
        let order = try await s.order(product: product, quantity: 2)
        try await s.expectCrashedOnPurpose(after: "publishing commerce.stock.decreased")
        try await s.restartServices()
        #expect(try await s.settledOrder(order) == "PLACED", "the saga went on after the restart")
        let copies = try await ReplicaTests.eventCopies(topics: [Topic.order, Topic.product, Topic.balance, Topic.payment].map { s.prefix + $0 })
        #expect(copies.count >= 18, "events on the topics: \(copies)")
        let twice = copies.filter { $0.value > 1 }
        #expect(twice.isEmpty, "\(twice.count) events published more than once: \(twice)")
        await s.finish()
    }

    /// A relay that cannot read what is already on its topics (here a read may take 1 ms) tries
    /// `OutboxRelay.lookAttempts` times, then sends without the check: publishing never stops
    /// for good, and what was already published goes out again (consumers drop it by event id).
    @Test func aRelayThatCannotReadItsTopicsSendsWithoutTheCheckRatherThanNever() async throws {
        let s = try await CommerceScenario(crashAfterPublish: "commerce.stock.decreased", extraArguments: ["--outbox-read-timeout-ms", "1"])
        let product = try await s.shop(stock: 10, quantity: 2)
        let order = try await s.order(product: product, quantity: 2)
        try await s.expectCrashedOnPurpose(after: "publishing commerce.stock.decreased")
        try await s.restartServices()
        #expect(try await s.settledOrder(order) == "PLACED", "the relay published in the end: \(s.services.output)")
        #expect(s.services.output.contains("sending without the check"), "\(s.services.output)")
        let copies = try await ReplicaTests.eventCopies(topics: [Topic.product].map { s.prefix + $0 })
        #expect(copies.values.filter { $0 == 2 }.count == 1, "the event found unread went out again: \(copies)")
        await s.finish()
    }

    @Test func aMalformedEventIsKeptWithItsReasonAndTheConsumerMovesOn() async throws {
        let s = try await CommerceScenario()
        let producer = try KafkaProducer(configuration: KafkaConfiguration(brokers: brokers))
        _ = try await producer.send(KafkaRecord(topic: "\(s.prefix)commerce.order", key: "1", value: "{not an event"))
        await producer.close()
        let product = try await s.shop(stock: 10, quantity: 2)
        let order = try await s.order(product: product, quantity: 2)
        #expect(try await s.settledOrder(order) == "PLACED", "the bad message did not stop the saga")
        let database = try DatabaseQueue(path: "\(s.dataDir)/product.sqlite")
        let rejected = try await eventually {
            try await database.read { db in try String.fetchAll(db, sql: "SELECT error FROM rejected_events") }.count == 1
        }
        let reasons = try await database.read { db in try String.fetchAll(db, sql: "SELECT error FROM rejected_events") }
        #expect(rejected && reasons.first?.hasPrefix("not a commerce event") == true, "\(reasons)")
        await s.finish()
    }

    /// U+0000 is valid JSON but PostgreSQL refuses it in text: a message that carries one (in its
    /// key, as a raw byte in its value, escaped in an event's id or reason) is kept in
    /// `rejected_events` and the consumer goes on, on both backends; a product name with one is a 400.
    @Test(arguments: Backend.allCases) func aNULAnywhereIsRejectedNeverAFailedService(backend: Backend) async throws {
        let s = try await CommerceScenario(backend: backend)
        let producer = try KafkaProducer(configuration: KafkaConfiguration(brokers: brokers))
        let topic = "\(s.prefix)commerce.order"
        let event = { (id: String, reason: String) in
            #"{"specversion":"1.0","id":"\#(id)","source":"/x","type":"commerce.order.cancelled","time":"2026-11-24T10:00:00.000Z","sagaid":"order-9","data":{"orderId":9,"reason":"\#(reason)"}}"#
        }
        _ = try await producer.send(KafkaRecord(topic: topic, key: Array("k\u{0}ey".utf8), value: Array("{\u{0}}".utf8)))
        _ = try await producer.send(KafkaRecord(topic: topic, key: "9", value: event(#"a\u0000b"#, "r")))
        _ = try await producer.send(KafkaRecord(topic: topic, key: "9", value: event("e-1", #"bad\u0000reason"#)))
        await producer.close()
        #expect(try await eventually { (try? await s.rejectedReasons("product").count) == 3 }, "\(s.services.output)")
        let reasons = try await s.rejectedReasons("product")
        #expect(reasons.allSatisfy { $0.hasPrefix("not a commerce event") }, "\(reasons)")
        let product = try await s.shop(stock: 10, quantity: 2)
        let order = try await s.order(product: product, quantity: 2)
        #expect(try await s.settledOrder(order) == "PLACED", "the consumer went on: \(s.services.output)")
        let named = try await s.call("POST", "/products", ["name": "a\u{0}b", "price": 1, "stock": 1])
        #expect(named.status == 400 && (named.json["error"] as? [String: Any])?["message"] as? String == "name may not contain U+0000", "\(named)")
        #expect(s.services.process.isRunning)
        await s.finish()
    }

    @Test func simulateAgainstNothingSaysSoInOneLineAtOnce() async throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("simulate-nothing-\(UUID().uuidString.prefix(6)).txt").path
        let status = await shell("'\(binary("commerce"))' simulate --orders 1 --url http://127.0.0.1:\(freePort()) >'\(out)' 2>&1")
        let text = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
        #expect(status != 0)
        #expect(text.split(separator: "\n").count == 1 && text.hasPrefix("commerce: simulation stopped: no commerce service answers at"), "\(text)")
    }

    /// MongoDB out of reach when the invariant check first reads the history (seen in a
    /// deployment check, next to a container being restarted): the check tries again within
    /// its settle time instead of failing the run.
    @Test func simulatesHistoryCheckWaitsOutMongoDBGoneForAMoment() async throws {
        let s = try await CommerceScenario()
        let proxy = try MongoFaultProxy(targetPort: Int(URLComponents(string: mongoURI)?.port ?? 21_017))
        defer { proxy.cutOff() }
        proxy.arm(.before(command: "find", collection: "payment_history"))
        let restored = Task {
            while proxy.cutCount == 0 { try await Task.sleep(for: .milliseconds(50)) }
            try await Task.sleep(for: .seconds(2))
            try proxy.restore()
        }
        defer { restored.cancel() }
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("simulate-\(s.id).txt").path
        let status = await shell(
            """
            '\(binary("commerce"))' simulate --orders 5 --users 2 --concurrency 2 --seed 3 --url http://127.0.0.1:\(s.port) \
              --mongo-uri '\(proxy.uri)/?serverSelectionTimeoutMS=500' --database \(s.database) --settle-seconds 30 --signing-key-file '\(try await TestTokens.shared.keys().signing)' >'\(out)' 2>&1
            """)
        let report = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
        #expect(proxy.cutCount == 1, "MongoDB was taken away at the history check")
        #expect(report.contains("the history check could not read MongoDB"), "\(report)")
        #expect(status == 0, "\(report)")
        #expect(report.contains("all invariants hold"), "\(report)")
        await s.finish()
    }

    @Test(arguments: Backend.allCases) func simulateWithFaultsAtEveryStepKeepsEveryInvariant(backend: Backend) async throws {
        let s = try await CommerceScenario(backend: backend, faults: "*=0.08")
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("simulate-\(s.id).txt").path
        let status = await shell(
            """
            '\(binary("commerce"))' simulate --orders 60 --users 8 --concurrency 6 --seed 11 --url http://127.0.0.1:\(s.port) \
              --database \(s.database) --settle-seconds 60 --signing-key-file '\(try await TestTokens.shared.keys().signing)' >'\(out)' 2>&1
            """)
        let report = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
        #expect(status == 0, "\(report)")
        #expect(report.contains("all invariants hold"), "\(report)")
        #expect(report.contains("injected fault at"), "faults were injected: \(report)")
        #expect(!report.contains("  FAIL "), "\(report)")
        await s.finish()
    }
}
