import Events
import Foundation
import SQLStore
import ServiceRuntime

/// Stock and carts. Decreases stock for a whole order or not at all, then removes the
/// ordered items from the cart; restores both when the order is cancelled.
public struct ProductService: DomainService {
    public let name = "product"
    public let topics = [Topic.order, Topic.product]
    /// Exactly the types `handle` switches on.
    public let handledTypes: Set<String>? = [EventType.orderRequested, EventType.stockDecreased, EventType.orderCancelled]

    public init() {}

    public let migrations = [
        SQLMigration(
            "product-v1",
            """
            CREATE TABLE products (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, price INTEGER NOT NULL, stock INTEGER NOT NULL);
            CREATE TABLE cart_items (user_id INTEGER NOT NULL, product_id INTEGER NOT NULL, quantity INTEGER NOT NULL,
                                     PRIMARY KEY (user_id, product_id)) WITHOUT ROWID;
            -- What this service did for each order, so that cancelling undoes exactly that, once.
            CREATE TABLE reservations (order_id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL, items TEXT NOT NULL,
                                       amount INTEGER NOT NULL, stock TEXT NOT NULL, cart TEXT NOT NULL);
            """)
    ]

    /// A cancelled order puts back the products its reservation holds, which the event does not name.
    public func lockKeys(for event: CommerceEvent, in db: any SQLDatabase) throws -> [String] {
        var keys = event.data.aggregateKeys
        if event.type == EventType.orderCancelled, let orderId = event.data.orderId, let r = try Reservation.fetch(orderId, db) {
            keys += r.items.map { "product/\($0.productId)" }
        }
        return keys
    }

    public func handle(_ event: CommerceEvent, in db: any SQLDatabase, node: ServiceNode) throws -> [CommerceEvent] {
        switch event.type {
        case EventType.orderRequested: try decreaseStock(event, db, node)
        case EventType.stockDecreased: try removeFromCart(event, db, node)
        case EventType.orderCancelled: try undo(event, db, node)
        default: []
        }
    }

    private func decreaseStock(_ event: CommerceEvent, _ db: any SQLDatabase, _ node: ServiceNode) throws -> [CommerceEvent] {
        let d = event.data
        guard let orderId = d.orderId, let userId = d.userId, let items = d.items, !items.isEmpty, let saga = event.sagaid else {
            throw DomainError("order request without orderId, userId, items and sagaid")
        }
        if try db.exists("SELECT 1 FROM reservations WHERE order_id = ?", orderId) { return [] }
        let needed = try Self.merge(items, of: orderId)
        var failure: String?
        if node.faults.fails("stock.decrease", saga: saga) { failure = "injected fault at stock.decrease" }
        if failure == nil, let line = items.first(where: { $0.quantity <= 0 }) { failure = "quantity of product \(line.productId) must be positive" }
        // The amount is summed over every known product whatever else fails, so an order whose
        // amount overflows is always rejected as impossible, never sometimes just cancelled.
        var amount: Int64 = 0
        for (productId, quantity) in needed.sorted(by: { $0.key < $1.key }) {
            guard let row = try db.row("SELECT price, stock FROM products WHERE id = ? FOR UPDATE", productId) else {
                failure = failure ?? "unknown product \(productId)"
                continue
            }
            let stock: Int64 = try row["stock"], price: Int64 = try row["price"]
            amount = try Checked.sum(amount, try Checked.product(price, quantity, "amount of order \(orderId)"), "amount of order \(orderId)")
            if failure == nil, stock < quantity { failure = "insufficient stock for product \(productId): has \(stock), order needs \(quantity)" }
        }
        let subject = "order/\(orderId)"
        if let failure {
            try record(orderId, userId, items, amount: 0, stock: "FAILED", db)
            return [node.event(EventType.stockDecreaseFailed, saga: saga, subject: subject, .init(userId: userId, orderId: orderId, reason: failure))]
        }
        for (productId, quantity) in needed {
            try db.execute("UPDATE products SET stock = stock - ? WHERE id = ?", quantity, productId)
        }
        try record(orderId, userId, items, amount: amount, stock: "DECREASED", db)
        return [
            node.event(EventType.stockDecreased, saga: saga, subject: subject, .init(userId: userId, orderId: orderId, amount: amount, items: items))
        ]
    }

    /// The quantity per product of an order's lines (a product may be on several lines).
    static func merge(_ items: [OrderItem], of orderId: Int64) throws -> [Int64: Int64] {
        var needed: [Int64: Int64] = [:]
        for item in items {
            needed[item.productId] = try Checked.sum(
                needed[item.productId] ?? 0, item.quantity, "quantity of product \(item.productId) in order \(orderId)")
        }
        return needed
    }

    private func removeFromCart(_ event: CommerceEvent, _ db: any SQLDatabase, _ node: ServiceNode) throws -> [CommerceEvent] {
        guard let orderId = event.data.orderId, let saga = event.sagaid else { throw DomainError("stock decreased without orderId and sagaid") }
        guard let r = try Reservation.fetch(orderId, db), r.cart == "NONE", r.stock == "DECREASED" else { return [] }
        let subject = "order/\(orderId)"
        let needed = try Self.merge(r.items, of: orderId)
        var failure: String?
        if node.faults.fails("cart.remove", saga: saga) { failure = "injected fault at cart.remove" }
        for (productId, quantity) in needed.sorted(by: { $0.key < $1.key }) where failure == nil {
            let held =
                try db.value(Int64.self, "SELECT quantity FROM cart_items WHERE user_id = ? AND product_id = ? FOR UPDATE", r.userId, productId)
                ?? 0
            if held < quantity { failure = "cart of user \(r.userId) holds \(held) of product \(productId), order needs \(quantity)" }
        }
        if let failure {
            try db.execute("UPDATE reservations SET cart = 'FAILED' WHERE order_id = ?", orderId)
            return [node.event(EventType.cartRemoveFailed, saga: saga, subject: subject, .init(userId: r.userId, orderId: orderId, reason: failure))]
        }
        for (productId, quantity) in needed {
            try db.execute("UPDATE cart_items SET quantity = quantity - ? WHERE user_id = ? AND product_id = ?", quantity, r.userId, productId)
        }
        try db.execute("DELETE FROM cart_items WHERE user_id = ? AND quantity <= 0", r.userId)
        try db.execute("UPDATE reservations SET cart = 'REMOVED' WHERE order_id = ?", orderId)
        return [
            node.event(
                EventType.cartRemoved, saga: saga, subject: subject, .init(userId: r.userId, orderId: orderId, amount: r.amount, items: r.items))
        ]
    }

    /// The order was cancelled: put back the stock and the cart items this order took, once.
    private func undo(_ event: CommerceEvent, _ db: any SQLDatabase, _ node: ServiceNode) throws -> [CommerceEvent] {
        guard let orderId = event.data.orderId, let saga = event.sagaid else { throw DomainError("order cancelled without orderId and sagaid") }
        guard let r = try Reservation.fetch(orderId, db) else { return [] }
        let subject = "order/\(orderId)"
        var out: [CommerceEvent] = []
        if r.stock == "DECREASED" {
            for item in r.items {
                guard let stock = try db.value(Int64.self, "SELECT stock FROM products WHERE id = ? FOR UPDATE", item.productId)
                else { continue }
                try db.execute(
                    "UPDATE products SET stock = ? WHERE id = ?", try Checked.sum(stock, item.quantity, "stock of product \(item.productId)"),
                    item.productId)
            }
            try db.execute("UPDATE reservations SET stock = 'RESTORED' WHERE order_id = ?", orderId)
            out.append(
                node.event(
                    EventType.stockRestored, saga: saga, subject: subject,
                    .init(userId: r.userId, orderId: orderId, items: r.items, reason: event.data.reason)))
        }
        if r.cart == "REMOVED" {
            for item in r.items {
                try Self.setCartLine(of: r.userId, product: item.productId, db) { current in
                    try Checked.sum(current, item.quantity, "cart quantity of product \(item.productId) for user \(r.userId)")
                }
            }
            try db.execute("UPDATE reservations SET cart = 'RESTORED' WHERE order_id = ?", orderId)
            out.append(
                node.event(
                    EventType.cartRestored, saga: saga, subject: subject,
                    .init(userId: r.userId, orderId: orderId, items: r.items, reason: event.data.reason)))
        }
        return out
    }

    /// Sets a user's cart line to `total(quantity it holds now)`. Callers add with a check here,
    /// not in SQL: SQLite turns an overflowing integer into a float, which traps when read back.
    /// The line is made first and then locked, so two writers adding to a new line both count.
    /// A line emptied and deleted by an order meanwhile (the lock waited for that) is made again.
    static func setCartLine(of userId: Int64, product productId: Int64, _ db: any SQLDatabase, total: (Int64) throws -> Int64) throws {
        while true {
            try db.execute("INSERT INTO cart_items (user_id, product_id, quantity) VALUES (?, ?, 0) ON CONFLICT DO NOTHING", userId, productId)
            guard
                let current = try db.value(
                    Int64.self, "SELECT quantity FROM cart_items WHERE user_id = ? AND product_id = ? FOR UPDATE", userId, productId)
            else { continue }
            try db.execute("UPDATE cart_items SET quantity = ? WHERE user_id = ? AND product_id = ?", try total(current), userId, productId)
            return
        }
    }

    private func record(_ orderId: Int64, _ userId: Int64, _ items: [OrderItem], amount: Int64, stock: String, _ db: any SQLDatabase) throws {
        try db.execute("INSERT INTO reservations VALUES (?, ?, ?, ?, ?, 'NONE')", orderId, userId, OrderItem.encodeList(items), amount, stock)
    }
}

struct Reservation {
    var userId: Int64
    var items: [OrderItem]
    var amount: Int64
    var stock: String
    var cart: String

    static func fetch(_ orderId: Int64, _ db: any SQLDatabase) throws -> Reservation? {
        guard let row = try db.row("SELECT * FROM reservations WHERE order_id = ?", orderId) else {
            return nil
        }
        let items = try OrderItem.decodeList(row["items"])
        return try Reservation(userId: row["user_id"], items: items, amount: row["amount"], stock: row["stock"], cart: row["cart"])
    }
}
