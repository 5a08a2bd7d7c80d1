import Foundation
import TestSupport
import Testing

/// `Idempotency-Key` as draft-ietf-httpapi-idempotency-key-header has it, over HTTP against the
/// real process: a key is bound to method, path and body; a stored answer keeps its status.
@Suite("Idempotency-Key")
struct IdempotencyKeyTests {
    @Test(arguments: Backend.allCases) func aKeyUsedForAnotherRequestIsA422NamingTheKey(backend: Backend) async throws {
        let s = try await CommerceScenario(backend: backend)
        let key = ["Idempotency-Key": "charge-7"]
        let first = try await s.call("POST", "/users/1/charge", ["amount": 500], headers: key)
        #expect(first.status == 200)

        let otherBody = try await s.call("POST", "/users/1/charge", ["amount": 700], headers: key)
        #expect(otherBody.status == 422 && Self.code(otherBody) == "idempotency_key_reused", "\(otherBody)")
        #expect(Self.message(otherBody)?.contains("'charge-7'") == true, "names the key: \(otherBody)")
        let otherPath = try await s.call("POST", "/users/2/charge", ["amount": 500], headers: key)
        #expect(otherPath.status == 422 && Self.code(otherPath) == "idempotency_key_reused", "\(otherPath)")
        let otherService = try await s.call("POST", "/products", ["name": "mug", "price": 100, "stock": 1], headers: key)
        #expect(otherService.status == 422 && Self.code(otherService) == "idempotency_key_reused", "\(otherService)")

        let product = try await s.call("POST", "/products", ["name": "mug", "price": 100, "stock": 5], headers: ["Idempotency-Key": "p-1"])
        #expect(product.status == 201)
        let otherRouteSameService = try await s.call("POST", "/users/1/cart", ["productId": 1, "quantity": 1], headers: ["Idempotency-Key": "p-1"])
        #expect(otherRouteSameService.status == 422 && Self.message(otherRouteSameService)?.contains("'p-1'") == true, "\(otherRouteSameService)")

        #expect(try await s.int("/users/1/balance", "balance") == 500, "only the first charge happened")
        #expect(try await s.call("GET", "/users/2/balance").status == 404)
        #expect(try await s.call("GET", "/products/2").status == 404, "one product")
        #expect((try await s.call("GET", "/users/1/cart").json["items"] as? [Any])?.isEmpty == true)
        let replay = try await s.call("POST", "/users/1/charge", ["amount": 500], headers: key)
        #expect(replay.status == 200 && replay.json["chargeId"] as? Int == first.json["chargeId"] as? Int && replay.json["balance"] as? Int == 500)
        await s.finish()
    }

    @Test(arguments: Backend.allCases) func aStoredAnswerKeepsItsStatusCode(backend: Backend) async throws {
        let s = try await CommerceScenario(backend: backend)
        let created = try await s.call("POST", "/products", ["name": "mug", "price": 100, "stock": 5], headers: ["Idempotency-Key": "p-1"])
        let again = try await s.call("POST", "/products", ["name": "mug", "price": 100, "stock": 5], headers: ["Idempotency-Key": "p-1"])
        #expect(created.status == 201 && again.status == 201 && again.json["id"] as? Int == created.json["id"] as? Int)

        // A 404 decided inside the service is the answer to that request, kept like a success.
        let missing = try await s.call("POST", "/users/1/cart", ["productId": 2, "quantity": 1], headers: ["Idempotency-Key": "cart-1"])
        #expect(missing.status == 404)
        #expect(try await s.call("POST", "/products", ["name": "cup", "price": 100, "stock": 5]).json["id"] as? Int == 2)
        let retried = try await s.call("POST", "/users/1/cart", ["productId": 2, "quantity": 1], headers: ["Idempotency-Key": "cart-1"])
        #expect(retried.status == 404 && Self.message(retried) == Self.message(missing), "\(retried)")
        #expect((try await s.call("GET", "/users/1/cart").json["items"] as? [Any])?.isEmpty == true, "the retry added nothing")
        await s.finish()
    }

    @Test(arguments: Backend.allCases) func aKeyOverTheLimitOrEmptyIsA400(backend: Backend) async throws {
        let s = try await CommerceScenario(backend: backend)
        let body: [String: Any] = ["name": "mug", "price": 100, "stock": 5]
        let long = try await s.call("POST", "/products", body, headers: ["Idempotency-Key": String(repeating: "k", count: 256)])
        #expect(long.status == 400 && Self.message(long)?.contains("Idempotency-Key") == true, "\(long)")
        let empty = try await s.call("POST", "/products", body, headers: ["Idempotency-Key": "\"\""])
        #expect(empty.status == 400, "\(empty)")
        #expect(try await s.call("GET", "/products/1").status == 404, "a refused key created nothing")

        let longest = String(repeating: "k", count: 255)
        let atLimit = try await s.call("POST", "/products", body, headers: ["Idempotency-Key": longest])
        #expect(atLimit.status == 201 && atLimit.json["id"] as? Int == 1)
        // The draft's form is a structured-field string: "k...k" is the same key as k...k.
        let quoted = try await s.call("POST", "/products", body, headers: ["Idempotency-Key": "\"\(longest)\""])
        #expect(quoted.status == 201 && quoted.json["id"] as? Int == 1, "\(quoted)")
        await s.finish()
    }

    static func code(_ answer: (status: Int, json: [String: Any])) -> String? { (answer.json["error"] as? [String: Any])?["code"] as? String }
    static func message(_ answer: (status: Int, json: [String: Any])) -> String? { (answer.json["error"] as? [String: Any])?["message"] as? String }
}
