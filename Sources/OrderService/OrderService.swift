import Events
import Foundation
import SQLStore
import ServiceRuntime

/// Orders and their status: PENDING -> PLACED -> PAID, or CANCELLED. Cancels on a stock or
/// cart failure, marks paid for a deducted balance, restores PLACED when that payment fails.
public struct OrderService: DomainService {
    public let name = "order"
    public let topics = [Topic.product, Topic.balance, Topic.payment]
    /// Exactly the types `handle` switches on.
    public let handledTypes: Set<String>? = [
        EventType.stockDecreaseFailed, EventType.cartRemoveFailed, EventType.cartRemoved, EventType.balanceDeducted, EventType.paymentFailed,
    ]

    public init() {}

    public let migrations = [
        SQLMigration(
            "order-v1",
            """
            CREATE TABLE orders (id INTEGER PRIMARY KEY AUTOINCREMENT, user_id INTEGER NOT NULL, items TEXT NOT NULL,
                                 amount INTEGER, status TEXT NOT NULL, reason TEXT, payment_id INTEGER);
            """)
    ]

    public func handle(_ event: CommerceEvent, in db: any SQLDatabase, node: ServiceNode) throws -> [CommerceEvent] {
        switch event.type {
        case EventType.stockDecreaseFailed, EventType.cartRemoveFailed: try cancel(event, reason: event.data.reason ?? event.type, db, node)
        case EventType.cartRemoved: try place(event, db, node)
        case EventType.balanceDeducted: try markPaid(event, db, node)
        case EventType.paymentFailed: try restoreStatus(event, db, node)
        default: []
        }
    }

    private func place(_ event: CommerceEvent, _ db: any SQLDatabase, _ node: ServiceNode) throws -> [CommerceEvent] {
        guard let orderId = event.data.orderId, let amount = event.data.amount, amount > 0, let saga = event.sagaid else {
            throw DomainError("cart removed without orderId, positive amount and sagaid")
        }
        guard let order = try Order.fetch(orderId, db, forUpdate: true), order.status == .pending else { return [] }
        if node.faults.fails("order.place", saga: saga) { return try cancel(event, reason: "injected fault at order.place", db, node) }
        try db.execute("UPDATE orders SET status = 'PLACED', amount = ? WHERE id = ?", amount, orderId)
        return [
            node.event(
                EventType.orderPlaced, saga: saga, subject: "order/\(orderId)",
                .init(userId: order.userId, orderId: orderId, amount: amount, items: order.items, status: "PLACED"))
        ]
    }

    /// The "delete order info" compensation: the order stays, CANCELLED with its reason.
    private func cancel(_ event: CommerceEvent, reason: String, _ db: any SQLDatabase, _ node: ServiceNode) throws -> [CommerceEvent] {
        guard let orderId = event.data.orderId, let saga = event.sagaid else { throw DomainError("\(event.type) without orderId and sagaid") }
        guard let order = try Order.fetch(orderId, db, forUpdate: true), order.status == .pending else { return [] }
        try db.execute("UPDATE orders SET status = 'CANCELLED', reason = ? WHERE id = ?", reason, orderId)
        return [
            node.event(
                EventType.orderCancelled, saga: saga, subject: "order/\(orderId)",
                .init(userId: order.userId, orderId: orderId, status: "CANCELLED", reason: reason))
        ]
    }

    private func markPaid(_ event: CommerceEvent, _ db: any SQLDatabase, _ node: ServiceNode) throws -> [CommerceEvent] {
        let d = event.data
        guard let orderId = d.orderId, let paymentId = d.paymentId, let userId = d.userId, let amount = d.amount, let saga = event.sagaid else {
            throw DomainError("balance deducted without orderId, paymentId, userId, amount and sagaid")
        }
        let order = try Order.fetch(orderId, db, forUpdate: true)
        if order?.status == .paid, order?.paymentId == paymentId { return [] }
        let failure: String? =
            switch order {
            // Another user's order reads as one that does not exist: the payer sees this reason.
            case nil: "order \(orderId) does not exist"
            case let o? where o.userId != userId: "order \(orderId) does not exist"
            case let o? where o.status == .paid: "order \(orderId) is already paid by payment \(o.paymentId ?? 0)"
            case let o? where o.status != .placed: "order \(orderId) is \(o.status.rawValue), not PLACED"
            case let o? where o.amount != amount: "payment of \(amount) does not match order amount \(o.amount ?? 0)"
            default: node.faults.fails("order.pay", saga: saga) ? "injected fault at order.pay" : nil
            }
        let data = CommerceEventData(userId: userId, orderId: orderId, paymentId: paymentId, amount: amount)
        if let failure {
            var failed = data
            failed.reason = failure
            return [node.event(EventType.orderStatusChangeFailed, saga: saga, subject: "order/\(orderId)", failed)]
        }
        try db.execute("UPDATE orders SET status = 'PAID', payment_id = ? WHERE id = ?", paymentId, orderId)
        var paid = data
        paid.status = "PAID"
        return [node.event(EventType.orderPaid, saga: saga, subject: "order/\(orderId)", paid)]
    }

    /// The payment failed after this order was marked paid by it: back to PLACED.
    private func restoreStatus(_ event: CommerceEvent, _ db: any SQLDatabase, _ node: ServiceNode) throws -> [CommerceEvent] {
        guard let orderId = event.data.orderId, let paymentId = event.data.paymentId, let saga = event.sagaid else {
            throw DomainError("payment failed without orderId, paymentId and sagaid")
        }
        guard let order = try Order.fetch(orderId, db, forUpdate: true), order.status == .paid, order.paymentId == paymentId else { return [] }
        try db.execute("UPDATE orders SET status = 'PLACED', payment_id = NULL WHERE id = ?", orderId)
        return [
            node.event(
                EventType.orderStatusRestored, saga: saga, subject: "order/\(orderId)",
                .init(userId: order.userId, orderId: orderId, paymentId: paymentId, status: "PLACED", reason: event.data.reason))
        ]
    }
}

struct Order: Codable, Sendable {
    enum Status: String, Codable, Sendable, CaseIterable {
        case pending = "PENDING", placed = "PLACED", paid = "PAID", cancelled = "CANCELLED"
    }

    var orderId: Int64
    var userId: Int64
    var items: [OrderItem]
    var amount: Int64?
    var status: Status
    var reason: String?
    var paymentId: Int64?
    var sagaId: String { "order-\(orderId)" }

    /// `forUpdate`: locked until the transaction ends, to be changed.
    static func fetch(_ id: Int64, _ db: any SQLDatabase, forUpdate: Bool = false) throws -> Order? {
        let row =
            forUpdate ? try db.row("SELECT * FROM orders WHERE id = ? FOR UPDATE", id) : try db.row("SELECT * FROM orders WHERE id = ?", id)
        guard let row else { return nil }
        return try Order(
            orderId: row["id"], userId: row["user_id"],
            items: try OrderItem.decodeList(row["items"]),
            amount: row["amount"], status: Status(rawValue: row["status"]) ?? .pending, reason: row["reason"], paymentId: row["payment_id"])
    }
}
