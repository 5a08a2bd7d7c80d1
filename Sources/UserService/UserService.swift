import Events
import SQLStore
import ServiceRuntime

/// Balances. Deducts for a payment request, restores when that payment fails downstream.
public struct UserService: DomainService {
    public let name = "user"
    public let topics = [Topic.payment]
    /// Exactly the types `handle` switches on.
    public let handledTypes: Set<String>? = [EventType.paymentRequested, EventType.paymentFailed]

    public init() {}

    public let migrations = [
        SQLMigration(
            "user-v1",
            """
            CREATE TABLE users (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL);
            CREATE TABLE charges (id INTEGER PRIMARY KEY AUTOINCREMENT, user_id INTEGER NOT NULL, amount INTEGER NOT NULL);
            -- One row per payment this service acted on: the memory that makes restore exactly-once.
            CREATE TABLE deductions (payment_id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL, order_id INTEGER NOT NULL,
                                     amount INTEGER NOT NULL, state TEXT NOT NULL);
            """)
    ]

    public func handle(_ event: CommerceEvent, in db: any SQLDatabase, node: ServiceNode) throws -> [CommerceEvent] {
        switch event.type {
        case EventType.paymentRequested: try deduct(event, db, node)
        case EventType.paymentFailed: try restore(event, db, node)
        default: []
        }
    }

    /// Balance deducted, or deduct-failed for a short balance or an injected fault.
    private func deduct(_ event: CommerceEvent, _ db: any SQLDatabase, _ node: ServiceNode) throws -> [CommerceEvent] {
        let d = event.data
        guard let paymentId = d.paymentId, let orderId = d.orderId, let userId = d.userId, let amount = d.amount, amount > 0,
            let saga = event.sagaid
        else { throw DomainError("payment request without paymentId, orderId, userId, positive amount and sagaid") }
        if try db.exists("SELECT 1 FROM deductions WHERE payment_id = ?", paymentId) { return [] }
        let balance = try Self.balance(of: userId, db, forUpdate: true) ?? 0
        var failure: String?
        if node.faults.fails("balance.deduct", saga: saga) {
            failure = "injected fault at balance.deduct"
        } else if balance < amount {
            failure = "insufficient balance: user \(userId) has \(balance), payment needs \(amount)"
        }
        let subject = "user/\(userId)"
        if let failure {
            try db.execute("INSERT INTO deductions VALUES (?, ?, ?, ?, 'FAILED')", paymentId, userId, orderId, amount)
            return [
                node.event(
                    EventType.balanceDeductFailed, saga: saga, subject: subject,
                    .init(userId: userId, orderId: orderId, paymentId: paymentId, amount: amount, reason: failure))
            ]
        }
        let after = try Checked.difference(balance, amount, "balance of user \(userId)")
        try db.execute("UPDATE users SET balance = ? WHERE id = ?", after, userId)
        try db.execute("INSERT INTO deductions VALUES (?, ?, ?, ?, 'DEDUCTED')", paymentId, userId, orderId, amount)
        return [
            node.event(
                EventType.balanceDeducted, saga: saga, subject: subject,
                .init(
                    userId: userId, orderId: orderId, paymentId: paymentId, amount: amount,
                    balanceBefore: balance, balanceAfter: after))
        ]
    }

    /// Gives back what this payment deducted, once; a payment that deducted nothing needs nothing.
    private func restore(_ event: CommerceEvent, _ db: any SQLDatabase, _ node: ServiceNode) throws -> [CommerceEvent] {
        guard let paymentId = event.data.paymentId, let saga = event.sagaid else { throw DomainError("payment failure without paymentId and sagaid") }
        guard
            let row = try db.row("SELECT user_id, order_id, amount FROM deductions WHERE payment_id = ? AND state = 'DEDUCTED'", paymentId)
        else { return [] }
        let userId: Int64 = try row["user_id"], amount: Int64 = try row["amount"], orderId: Int64 = try row["order_id"]
        let balance = try Self.balance(of: userId, db, forUpdate: true) ?? 0
        let after = try Checked.sum(balance, amount, "balance of user \(userId)")
        try db.execute("UPDATE users SET balance = ? WHERE id = ?", after, userId)
        try db.execute("UPDATE deductions SET state = 'RESTORED' WHERE payment_id = ?", paymentId)
        return [
            node.event(
                EventType.balanceRestored, saga: saga, subject: "user/\(userId)",
                .init(
                    userId: userId, orderId: orderId, paymentId: paymentId, amount: amount,
                    balanceBefore: balance, balanceAfter: after, reason: event.data.reason))
        ]
    }

    /// `forUpdate`: locked until the transaction ends, to be changed.
    static func balance(of userId: Int64, _ db: any SQLDatabase, forUpdate: Bool = false) throws -> Int64? {
        forUpdate
            ? try db.value(Int64.self, "SELECT balance FROM users WHERE id = ? FOR UPDATE", userId)
            : try db.value(Int64.self, "SELECT balance FROM users WHERE id = ?", userId)
    }
}
