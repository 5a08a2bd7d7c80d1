import Events
import Foundation
import Kafka
import TestSupport
import Testing

/// Two `serve all` processes on one PostgreSQL database: every service runs as two replicas
/// sharing its consumer group, inbox, outbox and Idempotency-Keys.
@Suite("replicas on PostgreSQL")
struct ReplicaTests {
    /// A retry that reaches the other replica gets the first answer and changes nothing.
    @Test func anIdempotencyKeyRetriedOnTheOtherReplicaGetsTheFirstAnswer() async throws {
        let s = try await CommerceScenario(backend: .postgres, replicas: 2)
        let product = try await s.shop(stock: 10, quantity: 4)
        let body: [String: Any] = ["userId": 1, "items": [["productId": product, "quantity": 2]]]
        let first = try await s.call("POST", "/orders", body, headers: ["Idempotency-Key": "k-1"], replica: 0)
        let retry = try await s.call("POST", "/orders", body, headers: ["Idempotency-Key": "k-1"], replica: 1)
        #expect(first.status == 202 && retry.status == 202)
        #expect(first.json["orderId"] as? Int == 1 && retry.json["orderId"] as? Int == 1, "\(first.json) \(retry.json)")
        #expect(try await s.call("GET", "/orders/2", replica: 1).status == 404, "no second order")
        let other = try await s.call("POST", "/users/1/charge", ["amount": 5], headers: ["Idempotency-Key": "k-1"], replica: 1)
        #expect(other.status == 422, "the key was used for another request: \(other.json)")
        await s.finish()
    }

    /// Both replicas add to one cart line at once: every addition counts (no update is lost
    /// between two transactions that read the same quantity).
    @Test func concurrentChangesOfOneRowOnBothReplicasAreAllKept() async throws {
        let s = try await CommerceScenario(backend: .postgres, replicas: 2)
        let product = try await s.shop(stock: 10, quantity: 1)
        let additions = 40
        try await withThrowingTaskGroup(of: Int.self) { group in
            for i in 0..<additions {
                group.addTask { try await s.call("POST", "/users/1/cart", ["productId": product, "quantity": 1], replica: i % 2).status }
            }
            for try await status in group { #expect(status == 200) }
        }
        let items = try await s.call("GET", "/users/1/cart", replica: 1).json["items"] as? [[String: Any]]
        #expect((items?.first?["quantity"] as? NSNumber)?.int64Value == Int64(1 + additions), "\(String(describing: items))")
        let charges = 30
        try await withThrowingTaskGroup(of: Int.self) { group in
            for i in 0..<charges { group.addTask { try await s.call("POST", "/users/2/charge", ["amount": 10], replica: i % 2).status } }
            for try await status in group { #expect(status == 200) }
        }
        #expect(try await s.int("/users/2/balance", "balance") == Int64(10 * charges))
        await s.finish()
    }

    /// Twenty orders for the same two products at once, half through each replica and half
    /// naming the products in the opposite order: stock is taken exactly by the orders placed,
    /// the ones that find too little are cancelled, and PostgreSQL saw no deadlock.
    @Test func ordersRacingForTwoHotProductsOnBothReplicasLoseNoUpdateAndNeverDeadlock() async throws {
        let s = try await CommerceScenario(backend: .postgres, replicas: 2)
        var products: [Int64] = []
        for _ in 0..<2 {
            let r = try await s.call("POST", "/products", ["name": "hot", "price": 10, "stock": 15])
            products.append(try #require((r.json["id"] as? NSNumber)?.int64Value, "\(r.json)"))
        }
        let users = Array(Int64(1)...20)
        for user in users {
            try await s.call("POST", "/users/\(user)/charge", ["amount": 1_000])
            for product in products { try await s.call("POST", "/users/\(user)/cart", ["productId": product, "quantity": 1]) }
        }
        let ids = try await withThrowingTaskGroup(of: Int64.self) { group in
            for user in users {
                let items = (user % 2 == 0 ? products : products.reversed()).map { ["productId": $0, "quantity": 1] }
                group.addTask {
                    let r = try await s.call("POST", "/orders", ["userId": user, "items": items], replica: Int(user % 2))
                    return try #require((r.json["orderId"] as? NSNumber)?.int64Value, "\(r.json)")
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        var placed = 0, cancelled = 0
        for id in ids {
            switch try await FrozenReplicaTests.status(s, "/orders/\(id)", waitingFor: "PLACED,CANCELLED", replica: Int(id % 2)) {
            case "PLACED": placed += 1
            case "CANCELLED": cancelled += 1
            case let other: Issue.record("order \(id) is \(other ?? "unknown")")
            }
        }
        #expect(placed == 15 && cancelled == 5, "placed \(placed), cancelled \(cancelled)")
        for product in products {
            #expect(try await s.int("/products/\(product)", "stock") == 0, "every unit went to a placed order, none twice")
        }
        let deadlocks = try await s.read("product") { db in
            try db.value(Int64.self, "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
        }
        #expect(deadlocks == 0, "PostgreSQL detected \(deadlocks ?? -1) deadlocks")
        #expect(try await s.rejectedReasons("product").isEmpty)
        await s.finish()
    }

    /// Sagas with injected failures through two replicas of every service: every invariant
    /// holds, and every event the services committed is on its topic exactly once (one relay
    /// per service leads; the other waits).
    @Test func sagasThroughTwoReplicasHoldEveryInvariantAndPublishEachEventOnce() async throws {
        let s = try await CommerceScenario(backend: .postgres, replicas: 2, faults: "*=0.08")
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("simulate-\(s.id).txt").path
        let status = await shell(
            """
            '\(binary("commerce"))' simulate --orders 60 --users 8 --concurrency 6 --seed 12 --url http://127.0.0.1:\(s.ports[1]) \
              --order-url http://127.0.0.1:\(s.ports[0]) --database \(s.database) --settle-seconds 60 --signing-key-file '\(try await TestTokens.shared.keys().signing)' >'\(out)' 2>&1
            """)
        let report = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
        #expect(status == 0, "\(report)")
        #expect(report.contains("all invariants hold"), "\(report)")
        #expect(report.contains("injected fault at"), "faults were injected: \(report)")
        let copies = try await Self.eventCopies(topics: [Topic.order, Topic.product, Topic.balance, Topic.payment].map { s.prefix + $0 })
        #expect(copies.count > 200, "events on the topics: \(copies.count)")
        let twice = copies.filter { $0.value > 1 }
        #expect(twice.isEmpty, "\(twice.count) events published more than once: \(twice.prefix(5))")
        for process in s.replicas { #expect(process.process.isRunning, "\(process.output)") }
        await s.finish()
    }

    /// How many times each event id is on the topics, read from the start by a group of its own.
    static func eventCopies(topics: [String]) async throws -> [String: Int] {
        var config = KafkaConsumerConfiguration(connection: KafkaConfiguration(brokers: brokers), groupID: "count-\(UUID())", topics: topics)
        config.sessionTimeoutMs = 6_000
        let consumer = try KafkaConsumer(configuration: config)
        var copies: [String: Int] = [:]
        var quiet = ContinuousClock.now
        let deadline = ContinuousClock.now + .seconds(60)
        // Until nothing new came for 3 s after the first messages (the group joins first).
        while ContinuousClock.now < deadline, copies.isEmpty || ContinuousClock.now - quiet < .seconds(3) {
            let messages = try await consumer.poll(maxMessages: 500, timeout: .milliseconds(200)).messages
            if !messages.isEmpty { quiet = .now }
            for message in messages {
                let event = try CommerceEvent.decode(message.value)
                copies[event.id, default: 0] += 1
            }
        }
        await consumer.close()
        return copies
    }
}
