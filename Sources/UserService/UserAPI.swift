import CommerceAPI
import Events
import Hummingbird
import SQLStore
import ServiceRuntime

/// `POST /users/{id}/charge`, `GET /users/{id}/balance`.
public enum UserAPI {
    struct ChargeRequest: Codable { let amount: Int64 }

    struct Balance: Codable, Sendable {
        let userId: Int64
        let balance: Int64
        var chargeId: Int64?
    }

    public static func register(on router: Router<CommerceContext>, node: ServiceNode) {
        router.post("/users/:userId/charge") { request, context -> Response in
            let userId = try context.id("userId")
            try context.requireOperator(to: "charge balances")
            let post = try await Post(ChargeRequest.self, from: request)
            let amount = post.body.amount
            guard amount > 0, amount <= 1_000_000_000_000 else { throw APIError.badRequest("amount must be 1-1000000000000, got \(amount)") }
            return try await node.respond(to: post) { db in
                // Made first, then locked: two first charges of one user both count.
                try db.execute("INSERT INTO users (id, balance) VALUES (?, 0) ON CONFLICT DO NOTHING", userId)
                let before = try UserService.balance(of: userId, db, forUpdate: true) ?? 0
                guard before <= Int64.max - amount else { throw APIError.conflict("balance_overflow", "balance of user \(userId) would overflow") }
                try db.execute("UPDATE users SET balance = ? WHERE id = ?", before + amount, userId)
                let chargeId = try db.insert("INSERT INTO charges (user_id, amount) VALUES (?, ?)", userId, amount)
                let event = node.event(
                    EventType.balanceCharged, saga: "charge-\(chargeId)", subject: "user/\(userId)",
                    .init(userId: userId, amount: amount, balanceBefore: before, balanceAfter: before + amount))
                return (Balance(userId: userId, balance: before + amount, chargeId: chargeId), [event])
            }
        }

        router.get("/users/:userId/balance") { _, context -> Response in
            let userId = try context.id("userId")
            try context.requireActing(for: userId)
            guard let balance = try await node.read({ db in try UserService.balance(of: userId, db) }) else {
                throw APIError.notFound("user \(userId) has never been charged")
            }
            return try JSON.response(Balance(userId: userId, balance: balance))
        }
    }
}
