import Foundation
import GRDB
import Kafka
import TestSupport
import Testing

/// Crafted events and request bodies whose numbers overflow: kept or refused with a reason,
/// never a trap, against the real process.
@Suite("impossible input")
struct ImpossibleInputTests {
    @Test func anOrderRequestWhoseAmountOverflowsIsRejectedAndTheServiceGoesOn() async throws {
        let s = try await CommerceScenario()
        let product = try await s.shop(price: 1_000, stock: 10, quantity: 2)
        let crafted: [[[String: Int64]]] = [
            [["productId": product, "quantity": Int64.max]],  // price × quantity
            [["productId": product, "quantity": 1 << 62], ["productId": product, "quantity": 1 << 62]],  // merging lines
            [["productId": product, "quantity": 10_000_000_000_000_000]],  // 1,000 × 10^16
        ]
        let producer = try KafkaProducer(configuration: KafkaConfiguration(brokers: brokers))
        for (i, items) in crafted.enumerated() {
            let orderId = 900_001 + i
            let event: [String: Any] = [
                "specversion": "1.0", "id": "crafted-\(s.id)-\(i)", "source": "/crafted", "type": "commerce.order.requested",
                "time": "2026-11-24T10:00:00.000Z", "sagaid": "order-\(orderId)",
                "data": ["orderId": orderId, "userId": 1, "items": items],
            ]
            _ = try await producer.send(
                KafkaRecord(
                    topic: "\(s.prefix)commerce.order", key: "\(orderId)",
                    value: String(decoding: try JSONSerialization.data(withJSONObject: event), as: UTF8.self)))
        }
        await producer.close()

        let database = try DatabaseQueue(path: "\(s.dataDir)/product.sqlite")
        let rejected = { @Sendable in
            try await database.read { db in try String.fetchAll(db, sql: "SELECT error FROM rejected_events ORDER BY \"offset\"") }
        }
        _ = try await eventually {
            guard s.services.process.isRunning else { return true }
            return (try? await rejected().count) == 3
        }
        #expect(s.services.process.isRunning, "the product service survived the crafted events: \(s.services.output.suffix(2_000))")
        let reasons = try await rejected()
        #expect(reasons.count == 3 && reasons.allSatisfy { $0.contains("overflow") }, "\(reasons)")
        #expect(try await s.int("/products/\(product)", "stock") == 10, "the crafted orders took nothing")

        let order = try await s.order(product: product, quantity: 2)
        #expect(try await s.settledOrder(order) == "PLACED", "a later saga still works")
        #expect(try await s.int("/products/\(product)", "stock") == 8)
        await s.finish()
    }

    /// Quantities and amounts out of range are refused before anything is summed; ids are not
    /// summed, so a large id is just an id (an unknown one is a 404).
    @Test func requestBodiesWithHugeNumbersAreA4xx() async throws {
        let s = try await CommerceScenario()
        _ = try await s.shop()
        let huge = ["9223372036854775807", "9223372036854775808", "-9223372036854775808", "1e400", "99999999999999999999999"]
        for n in huge {
            let bodies: [(String, String)] = [
                ("/users/1/charge", #"{"amount": \#(n)}"#),
                ("/products", #"{"name": "x", "price": \#(n), "stock": 1}"#),
                ("/products", #"{"name": "x", "price": 1, "stock": \#(n)}"#),
                ("/users/1/cart", #"{"productId": 1, "quantity": \#(n)}"#),
                ("/users/1/cart", #"{"productId": \#(n), "quantity": 1}"#),
                ("/orders", #"{"userId": 1, "items": [{"productId": 1, "quantity": \#(n)}]}"#),
                ("/payments", #"{"orderId": 1, "userId": 1, "amount": \#(n)}"#),
            ]
            for (path, body) in bodies {
                let answer = try await s.raw("POST", path, body: body)
                let error = answer.json["error"] as? [String: Any]
                #expect((400..<500).contains(answer.status) && error?["message"] is String, "\(path) \(body): \(answer)")
            }
        }
        #expect(try await s.call("POST", "/users/99999999999999999999/charge", ["amount": 1]).status == 400)
        #expect(s.services.process.isRunning)
        #expect(try await s.int("/users/1/balance", "balance") == 100_000, "nothing was charged")
        await s.finish()
    }

    /// A cart line near the top of Int64 (no client reaches it, but nothing stops it): adding
    /// to it is a 409 JSON error, not an overflow stored as a float that traps when read back.
    @Test func addingToACartLineThatWouldOverflowIsA409() async throws {
        let s = try await CommerceScenario()
        let product = try await s.shop(quantity: 1)
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        let database = try DatabaseQueue(path: "\(s.dataDir)/product.sqlite", configuration: configuration)
        try await database.write { db in
            try db.execute(sql: "UPDATE cart_items SET quantity = ? WHERE user_id = 1", arguments: [Int64.max - 10])
        }
        let answer = try await s.call("POST", "/users/1/cart", ["productId": product, "quantity": 100])
        #expect(answer.status == 409 && (answer.json["error"] as? [String: Any])?["message"] is String, "\(answer)")
        #expect(s.services.process.isRunning)
        let cart = try await s.call("GET", "/users/1/cart").json["items"] as? [[String: Any]]
        #expect((cart?.first?["quantity"] as? NSNumber)?.int64Value == Int64.max - 10, "unchanged: \(String(describing: cart))")
        await s.finish()
    }
}
