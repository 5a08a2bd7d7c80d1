import Foundation
import Kafka
import TestSupport
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Who may do what on a real `commerce serve all`: no token is a 401 with RFC 6750's
/// challenge; a user acts only for themself; an operator manages products and charges; another
/// user's order or payment does not exist (404).
@Suite("authorization")
struct AuthorizationTests {
    @Test func withoutAGoodTokenEveryProtectedRouteIsA401WithAChallenge() async throws {
        let s = try await CommerceScenario(backend: .sqlite)
        let routes: [(String, String, [String: Any]?)] = [
            ("POST", "/products", ["name": "x", "price": 1, "stock": 1]), ("GET", "/products/1", nil),
            ("POST", "/users/1/charge", ["amount": 5]), ("GET", "/users/1/balance", nil),
            ("POST", "/users/1/cart", ["productId": 1, "quantity": 1]), ("GET", "/users/1/cart", nil),
            ("POST", "/orders", ["userId": 1, "items": [["productId": 1, "quantity": 1]]]), ("GET", "/orders/1", nil),
            ("POST", "/payments", ["orderId": 1, "userId": 1, "amount": 5]), ("GET", "/payments/1", nil),
        ]
        for (method, path, body) in routes {
            let none = try await s.exchange(method, path, body, as: nil)
            #expect(none.status == 401, "\(method) \(path): \(none.json)")
            #expect(none.response?.value(forHTTPHeaderField: "WWW-Authenticate") == #"Bearer realm="commerce""#)
            #expect((none.json["error"] as? [String: Any])?["code"] as? String == "unauthorized")
            for header in ["Bearer not-a-token", "Basic dXNlcjpwYXNz", "Bearer "] {
                let bad = try await s.exchange(method, path, body, headers: ["Authorization": header], as: nil)
                #expect(bad.status == 401, "\(method) \(path) with '\(header)': \(bad.json)")
                #expect(bad.response?.value(forHTTPHeaderField: "WWW-Authenticate")?.contains(#"error="invalid_token""#) == true)
            }
        }
        // Probes, scrapers and API tools need none.
        for path in ["/healthz", "/metrics", "/openapi.json"] { #expect(try await s.call("GET", path, as: nil).status == 200, "\(path)") }
        // Nothing was created by any refused request.
        #expect(try await s.call("GET", "/products/1").status == 404)
        await s.finish()
    }

    @Test func aUserActsOnlyForThemselfAndCannotSeeAnotherUsersOrderOrPayment() async throws {
        let s = try await CommerceScenario(backend: .sqlite)
        // What only an operator may do.
        let userMakesProduct = try await s.exchange("POST", "/products", ["name": "x", "price": 1, "stock": 5], as: .user(1))
        #expect(userMakesProduct.status == 403, "\(userMakesProduct.json)")
        #expect(userMakesProduct.response?.value(forHTTPHeaderField: "WWW-Authenticate")?.contains(#"error="insufficient_scope""#) == true)
        #expect(try await s.call("POST", "/users/1/charge", ["amount": 5], as: .user(1)).status == 403)

        let product = try await s.shop(price: 100, stock: 10, balance: 10_000, quantity: 1, user: 1)
        // User 2 on user 1's behalf: refused, and nothing changes.
        #expect(try await s.call("GET", "/users/1/balance", as: .user(2)).status == 403)
        #expect(try await s.call("GET", "/users/1/cart", as: .user(2)).status == 403)
        #expect(try await s.call("POST", "/users/1/cart", ["productId": product, "quantity": 1], as: .user(2)).status == 403)
        #expect(try await s.call("POST", "/orders", ["userId": 1, "items": [["productId": product, "quantity": 1]]], as: .user(2)).status == 403)
        // User 1 for themself.
        #expect(try await s.call("GET", "/users/1/balance", as: .user(1)).json["balance"] as? Int == 10_000)
        let placed = try await s.call("POST", "/orders", ["userId": 1, "items": [["productId": product, "quantity": 1]]], as: .user(1))
        #expect(placed.status == 202, "\(placed.json)")
        let order = try #require((placed.json["orderId"] as? NSNumber)?.int64Value)
        #expect(try await s.settledOrder(order) == "PLACED")
        #expect(try await s.call("POST", "/payments", ["orderId": order, "userId": 1, "amount": 100], as: .user(2)).status == 403)
        let paid = try await s.call("POST", "/payments", ["orderId": order, "userId": 1, "amount": 100], as: .user(1))
        #expect(paid.status == 202, "\(paid.json)")
        let payment = try #require((paid.json["paymentId"] as? NSNumber)?.int64Value)
        // Another user's order and payment do not exist for user 2, waiting or not; the owner and an operator see them.
        for path in ["/orders/\(order)", "/payments/\(payment)", "/orders/\(order)?waitFor=CANCELLED&timeoutMs=5000"] {
            let hidden = try await s.call("GET", path, as: .user(2))
            #expect(hidden.status == 404 && (hidden.json["error"] as? [String: Any])?["code"] as? String == "not_found", "\(path): \(hidden.json)")
            #expect(try await s.call("GET", path, as: .user(1)).status == 200, "\(path)")
            #expect(try await s.call("GET", path, as: .operator).status == 200, "\(path)")
        }
        // User 2 paying user 1's order learns nothing of it: the reason is that of an order that does not exist.
        #expect(try await s.call("POST", "/users/2/charge", ["amount": 1_000]).status == 200)
        let probe = try await s.call("POST", "/payments", ["orderId": order, "userId": 2, "amount": 100], as: .user(2))
        let probeId = try #require((probe.json["paymentId"] as? NSNumber)?.int64Value, "\(probe.json)")
        #expect(try await s.settledPayment(probeId) == "FAILED")
        let reason = try await s.call("GET", "/payments/\(probeId)", as: .user(2)).json["reason"] as? String
        #expect(reason == "order \(order) does not exist", "\(reason ?? "no reason")")
        // A token is a credential: it is in no log line of the process that checked it.
        for who in [TestTokens.Who.user(1), .user(2), .operator] {
            let token = try await TestTokens.shared.token(who)
            #expect(!s.services.output.contains(token.split(separator: ".").last ?? "-"), "\(who)'s token signature in the log")
        }
        await s.finish()
    }

    @Test func serveWithoutAKeyRefusesToStartAndAuthNoneSaysItIsOpen() async throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("auth-\(UUID().uuidString.prefix(8)).txt").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        let status = await shell(
            "COMMERCE_AUTH_KEY_FILE= COMMERCE_AUTH= '\(binary("commerce"))' serve all --http-port \(freePort()) --data-dir /nonexistent >'\(out)' 2>&1"
        )
        let text = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
        #expect(status != 0)
        #expect(text.split(separator: "\n").count == 1 && text.contains("no token key: give --auth-key-file"), "\(text)")

        let s = try await CommerceScenario(backend: .sqlite, extraArguments: ["--auth", "none"])
        #expect(try await s.call("POST", "/products", ["name": "x", "price": 1, "stock": 1], as: nil).status == 201)
        #expect(s.services.output.contains("AUTHENTICATION IS OFF (--auth none)"), "\(s.services.output)")
        await s.finish()
    }
}

/// `--ops-port`: probes and scrapers on an address of their own, the API's port all API.
@Suite("health and metrics apart")
struct OperationsPortTests {
    @Test func withAnOpsPortHealthAndMetricsAreServedThereAndNotOnTheAPIsPort() async throws {
        let id = String(UUID().uuidString.prefix(8).lowercased())
        try await KafkaAdmin(configuration: KafkaConfiguration(brokers: brokers)).createTopics(
            ["commerce.order", "commerce.product", "commerce.balance", "commerce.payment"].map { "o\(id).\($0)" }, partitions: 1)
        let (api, ops) = (freePort(), freePort())
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("ops-\(id)").path
        let services = try ChildProcess(
            executable: binary("commerce"),
            arguments: [
                "serve", "all", "--http-port", "\(api)", "--ops-port", "\(ops)", "--data-dir", folder, "--topic-prefix", "o\(id).",
                "--brokers", brokers,
            ] + (try await TestTokens.shared.serveArguments()), logName: "ops-\(id)")
        defer {
            services.terminate()
            try? FileManager.default.removeItem(atPath: folder)
        }
        #expect(try await eventually(60) { await ChildProcess.get("http://127.0.0.1:\(ops)/healthz")?.0 == 200 }, "\(services.output)")
        #expect(await ChildProcess.get("http://127.0.0.1:\(ops)/metrics")?.1.contains("commerce_long_poll_waiters") == true)
        // The API's port serves the API, with tokens, and neither of the two.
        let token = try await TestTokens.shared.token(.operator)
        #expect(await ChildProcess.get("http://127.0.0.1:\(api)/products/1", bearer: token)?.0 == 404)
        #expect(await ChildProcess.get("http://127.0.0.1:\(api)/healthz", bearer: token)?.0 == 404)
        #expect(await ChildProcess.get("http://127.0.0.1:\(api)/metrics", bearer: token)?.0 == 404)
        #expect(await ChildProcess.get("http://127.0.0.1:\(api)/healthz")?.0 == 404)
        // And the ops port serves nothing of the API.
        #expect(await ChildProcess.get("http://127.0.0.1:\(ops)/products/1", bearer: token)?.0 == 404)
    }
}
