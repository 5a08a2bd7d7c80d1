import Events
import SQLStore
import ServiceRuntime

/// Payments: REQUESTED -> COMPLETED once the order is paid, or FAILED on a short balance,
/// an order that cannot be paid, or a failure while completing.
public struct PaymentService: DomainService {
    public let name = "payment"
    public let topics = [Topic.balance, Topic.order]
    /// Exactly the types `handle` switches on.
    public let handledTypes: Set<String>? = [EventType.balanceDeductFailed, EventType.orderStatusChangeFailed, EventType.orderPaid]

    public init() {}

    public let migrations = [
        SQLMigration(
            "payment-v1",
            """
            CREATE TABLE payments (id INTEGER PRIMARY KEY AUTOINCREMENT, order_id INTEGER NOT NULL, user_id INTEGER NOT NULL,
                                   amount INTEGER NOT NULL, status TEXT NOT NULL, reason TEXT);
            """)
    ]

    public func handle(_ event: CommerceEvent, in db: any SQLDatabase, node: ServiceNode) throws -> [CommerceEvent] {
        switch event.type {
        case EventType.balanceDeductFailed, EventType.orderStatusChangeFailed: try fail(event, reason: event.data.reason ?? event.type, db, node)
        case EventType.orderPaid: try complete(event, db, node)
        default: []
        }
    }

    private func complete(_ event: CommerceEvent, _ db: any SQLDatabase, _ node: ServiceNode) throws -> [CommerceEvent] {
        guard let paymentId = event.data.paymentId, let saga = event.sagaid else { throw DomainError("order paid without paymentId and sagaid") }
        guard let p = try Payment.fetch(paymentId, db, forUpdate: true), p.status == "REQUESTED" else { return [] }
        if node.faults.fails("payment.complete", saga: saga) { return try fail(event, reason: "injected fault at payment.complete", db, node) }
        try db.execute("UPDATE payments SET status = 'COMPLETED' WHERE id = ?", paymentId)
        return [
            node.event(
                EventType.paymentCompleted, saga: saga, subject: "payment/\(paymentId)",
                .init(userId: p.userId, orderId: p.orderId, paymentId: paymentId, amount: p.amount, status: "COMPLETED"))
        ]
    }

    private func fail(_ event: CommerceEvent, reason: String, _ db: any SQLDatabase, _ node: ServiceNode) throws -> [CommerceEvent] {
        guard let paymentId = event.data.paymentId, let saga = event.sagaid else { throw DomainError("\(event.type) without paymentId and sagaid") }
        guard let p = try Payment.fetch(paymentId, db, forUpdate: true), p.status == "REQUESTED" else { return [] }
        try db.execute("UPDATE payments SET status = 'FAILED', reason = ? WHERE id = ?", reason, paymentId)
        return [
            node.event(
                EventType.paymentFailed, saga: saga, subject: "payment/\(paymentId)",
                .init(userId: p.userId, orderId: p.orderId, paymentId: paymentId, amount: p.amount, status: "FAILED", reason: reason))
        ]
    }
}

struct Payment: Codable, Sendable {
    static let statuses = ["REQUESTED", "COMPLETED", "FAILED"]
    var paymentId: Int64
    var orderId: Int64
    var userId: Int64
    var amount: Int64
    var status: String
    var reason: String?
    var sagaId: String

    /// `forUpdate`: locked until the transaction ends, to be changed.
    static func fetch(_ id: Int64, _ db: any SQLDatabase, forUpdate: Bool = false) throws -> Payment? {
        let row =
            forUpdate
            ? try db.row("SELECT * FROM payments WHERE id = ? FOR UPDATE", id) : try db.row("SELECT * FROM payments WHERE id = ?", id)
        guard let row else { return nil }
        return try Payment(
            paymentId: row["id"], orderId: row["order_id"], userId: row["user_id"], amount: row["amount"],
            status: row["status"], reason: row["reason"], sagaId: "pay-\(id)")
    }
}
