import Foundation
import TestSupport
import Testing

/// The order saga end to end: order saved -> stock decreased -> cart removed -> placed, and
/// each compensation (restore stock, restore cart, cancel the order).
@Suite("order saga")
struct OrderSagaTests {
    @Test(arguments: Backend.allCases) func aPlacedOrderTookTheStockAndTheCartItems(backend: Backend) async throws {
        let s = try await CommerceScenario(backend: backend)
        let product = try await s.shop(price: 1_500, stock: 10, quantity: 3)
        let order = try await s.order(product: product, quantity: 2)
        #expect(try await s.settledOrder(order) == "PLACED")
        #expect(try await s.int("/orders/\(order)", "amount") == 3_000)
        #expect(try await s.int("/products/\(product)", "stock") == 8)
        let cart = try await s.call("GET", "/users/1/cart").json["items"] as? [[String: Any]]
        #expect(cart?.count == 1 && (cart?.first?["quantity"] as? NSNumber)?.int64Value == 1, "one of three left in the cart")
        await s.finish()
    }

    @Test(arguments: Backend.allCases) func insufficientStockCancelsTheOrderAndTakesNothing(backend: Backend) async throws {
        let s = try await CommerceScenario(backend: backend)
        let product = try await s.shop(stock: 1, quantity: 2)
        let order = try await s.order(product: product, quantity: 2)
        #expect(try await s.settledOrder(order) == "CANCELLED")
        #expect(try await s.string("/orders/\(order)", "reason") == "insufficient stock for product \(product): has 1, order needs 2")
        #expect(try await s.int("/products/\(product)", "stock") == 1)
        await s.finish()
    }

    @Test(arguments: Backend.allCases) func aCartWithoutTheItemsRestoresTheStockAndCancelsTheOrder(backend: Backend) async throws {
        let s = try await CommerceScenario(backend: backend)
        let product = try await s.shop(stock: 10, quantity: 1)
        let order = try await s.order(product: product, quantity: 2)
        #expect(try await s.settledOrder(order) == "CANCELLED")
        #expect(try await s.string("/orders/\(order)", "reason")?.hasPrefix("cart of user 1 holds 1") == true)
        #expect(try await eventually { try await s.int("/products/\(product)", "stock") == 10 }, "stock restored")
        await s.finish()
    }

    @Test(arguments: Backend.allCases) func aFailureToPlaceRestoresStockAndCart(backend: Backend) async throws {
        let s = try await CommerceScenario(backend: backend, faults: "order.place=order-1")
        let product = try await s.shop(stock: 10, quantity: 2)
        let order = try await s.order(product: product, quantity: 2)
        #expect(order == 1)
        #expect(try await s.settledOrder(order) == "CANCELLED")
        #expect(try await s.string("/orders/\(order)", "reason") == "injected fault at order.place")
        #expect(try await eventually { try await s.int("/products/\(product)", "stock") == 10 }, "stock restored")
        #expect(
            try await eventually {
                let items = try await s.call("GET", "/users/1/cart").json["items"] as? [[String: Any]]
                return (items?.first?["quantity"] as? NSNumber)?.int64Value == 2
            }, "cart restored")
        await s.finish()
    }

    @Test(arguments: Backend.allCases) func aRetriedRequestWithItsIdempotencyKeyCreatesNothingTwice(backend: Backend) async throws {
        let s = try await CommerceScenario(backend: backend)
        let product = try await s.shop(stock: 10, quantity: 4)
        let body: [String: Any] = ["userId": 1, "items": [["productId": product, "quantity": 2]]]
        let first = try await s.call("POST", "/orders", body, headers: ["Idempotency-Key": "k-1"])
        let retry = try await s.call("POST", "/orders", body, headers: ["Idempotency-Key": "k-1"])
        #expect(first.status == 202 && retry.status == 202)
        #expect(first.json["orderId"] as? Int == 1 && retry.json["orderId"] as? Int == 1)
        #expect(try await s.settledOrder(1) == "PLACED")
        #expect(try await s.call("GET", "/orders/2").status == 404, "no second order")
        #expect(try await s.int("/products/\(product)", "stock") == 8, "one saga, one decrease")
        let charged = try await s.call("POST", "/users/1/charge", ["amount": 5], headers: ["Idempotency-Key": "c-1"])
        let again = try await s.call("POST", "/users/1/charge", ["amount": 5], headers: ["Idempotency-Key": "c-1"])
        #expect(charged.json["balance"] as? Int == again.json["balance"] as? Int)
        #expect(try await s.int("/users/1/balance", "balance") == 100_005)
        await s.finish()
    }

    @Test(arguments: Backend.allCases) func badInputIsAClearFourHundredAndChangesNothing(backend: Backend) async throws {
        let s = try await CommerceScenario(backend: backend)
        let missing = try await s.call("POST", "/orders", ["userId": 1])
        #expect(missing.status == 400)
        #expect((missing.json["error"] as? [String: Any])?["message"] as? String == "missing field 'items'")
        let wrongType = try await s.call("POST", "/users/1/charge", ["amount": "lots"])
        #expect(
            wrongType.status == 400
                && ((wrongType.json["error"] as? [String: Any])?["message"] as? String)?.contains("'amount' must be an integer") == true)
        #expect(try await s.raw("POST", "/products", body: "{not json").status == 400)
        #expect(try await s.call("POST", "/users/1/charge", ["amount": -5]).status == 400)
        #expect(try await s.call("GET", "/orders/abc").status == 400)
        let unknown = try await s.call("GET", "/orders/999")
        #expect(unknown.status == 404 && (unknown.json["error"] as? [String: Any])?["code"] as? String == "not_found")
        #expect(try await s.call("POST", "/users/1/cart", ["productId": 42, "quantity": 1]).status == 404)
        #expect(try await s.call("GET", "/users/1/balance").status == 404, "the failed charges charged nothing")
        await s.finish()
    }
}
