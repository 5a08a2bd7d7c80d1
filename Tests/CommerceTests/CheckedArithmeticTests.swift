import Events
import Foundation
import ProductService
import SQLStore
import SQLiteStore
import ServiceRuntime
import Testing
import UserService

/// Sums and products on event data, straight through a service's handler (no servers): an
/// overflow is a DomainError (the consumer then keeps the event in `rejected_events`) and
/// changes nothing; never a trap, never a float stored in an integer column.
@Suite("checked arithmetic")
struct CheckedArithmeticTests {
    @Test func anOrderRequestWhoseAmountOrLinesOverflowIsADomainError() async throws {
        let node = try await Self.node(ProductService())
        try await node.database.write { db in try db.execute("INSERT INTO products (name, price, stock) VALUES ('w', 1000, 10)") }
        let crafted: [[OrderItem]] = [
            [OrderItem(productId: 1, quantity: .max)],
            [OrderItem(productId: 1, quantity: 1 << 62), OrderItem(productId: 1, quantity: 1 << 62)],
            [OrderItem(productId: 1, quantity: 10_000_000_000_000_000)],
        ]
        for (i, items) in crafted.enumerated() {
            let error = await Self.domainError {
                try await Self.apply(node, EventType.orderRequested, saga: "order-\(i + 1)", .init(userId: 1, orderId: Int64(i + 1), items: items))
            }
            #expect(error?.description.contains("overflow") == true, "\(items): \(String(describing: error))")
        }
        #expect(try await Self.integer(node, "SELECT stock FROM products WHERE id = 1") == .integer(10))
    }

    @Test func aStockRestoreThatWouldOverflowIsADomainError() async throws {
        let node = try await Self.node(ProductService())
        try await node.database.write { db in try db.execute("INSERT INTO products (name, price, stock) VALUES ('w', 1000, 10)") }
        _ = try await Self.apply(
            node, EventType.orderRequested, saga: "order-1", .init(userId: 1, orderId: 1, items: [OrderItem(productId: 1, quantity: 2)]))
        try await node.database.write { db in try db.execute("UPDATE products SET stock = ?", Int64.max - 1) }
        let error = await Self.domainError {
            try await Self.apply(node, EventType.orderCancelled, saga: "order-1", .init(userId: 1, orderId: 1, reason: "test"))
        }
        #expect(error?.description.contains("overflow") == true, "\(String(describing: error))")
        #expect(try await Self.integer(node, "SELECT stock FROM products WHERE id = 1") == .integer(.max - 1))
    }

    @Test func aCartRestoreThatWouldOverflowIsADomainError() async throws {
        let node = try await Self.node(ProductService())
        try await node.database.write { db in
            try db.execute("INSERT INTO products (name, price, stock) VALUES ('w', 1000, 10)")
            try db.execute("INSERT INTO cart_items VALUES (1, 1, 2)")
        }
        let items = [OrderItem(productId: 1, quantity: 2)]
        let decreased = try await Self.apply(node, EventType.orderRequested, saga: "order-1", .init(userId: 1, orderId: 1, items: items))
        #expect(decreased.map(\.type) == [EventType.stockDecreased])
        let removed = try await Self.apply(node, EventType.stockDecreased, saga: "order-1", .init(userId: 1, orderId: 1, amount: 2_000, items: items))
        #expect(removed.map(\.type) == [EventType.cartRemoved])
        try await node.database.write { db in try db.execute("INSERT INTO cart_items VALUES (1, 1, ?)", Int64.max - 1) }
        let error = await Self.domainError {
            try await Self.apply(node, EventType.orderCancelled, saga: "order-1", .init(userId: 1, orderId: 1, reason: "test"))
        }
        #expect(error?.description.contains("overflow") == true, "\(String(describing: error))")
        #expect(try await Self.integer(node, "SELECT quantity FROM cart_items WHERE user_id = 1") == .integer(.max - 1))
        #expect(try await Self.integer(node, "SELECT stock FROM products WHERE id = 1") == .integer(8), "the stock restore went back with it")
    }

    @Test func aBalanceRestoreThatWouldOverflowIsADomainError() async throws {
        let node = try await Self.node(UserService())
        try await node.database.write { db in try db.execute("INSERT INTO users (id, balance) VALUES (1, 1000)") }
        let deducted = try await Self.apply(node, EventType.paymentRequested, saga: "pay-1", .init(userId: 1, orderId: 1, paymentId: 1, amount: 500))
        #expect(deducted.map(\.type) == [EventType.balanceDeducted])
        try await node.database.write { db in try db.execute("UPDATE users SET balance = ?", Int64.max - 100) }
        let error = await Self.domainError {
            try await Self.apply(
                node, EventType.paymentFailed, saga: "pay-1", .init(userId: 1, orderId: 1, paymentId: 1, amount: 500, reason: "test"))
        }
        #expect(error?.description.contains("overflow") == true, "\(String(describing: error))")
        #expect(try await Self.integer(node, "SELECT balance FROM users WHERE id = 1") == .integer(.max - 100))
    }

    static func node(_ service: any DomainService) async throws -> ServiceNode {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("checked-\(UUID().uuidString.prefix(8))").path
        return try await ServiceNode(service: service, store: SQLiteStore(path: "\(directory)/\(service.name).sqlite"))
    }

    static func apply(_ node: ServiceNode, _ type: String, saga: String, _ data: CommerceEventData) async throws -> [CommerceEvent] {
        let event = CommerceEvent(source: "/test", type: type, timeMs: 0, sagaId: saga, data: data)
        return try await node.database.write { db in try node.service.handle(event, in: db, node: node) }
    }

    static func domainError(_ body: () async throws -> [CommerceEvent]) async -> DomainError? {
        do {
            _ = try await body()
            return nil
        } catch {
            return error as? DomainError
        }
    }

    /// The stored value as the store keeps it: an overflow in SQLite's SQL turns an integer into
    /// a float, which SQLiteStore reads as text.
    static func integer(_ node: ServiceNode, _ sql: String) async throws -> SQLValue? {
        try await node.database.read { db in try db.rows(sql, []).first?.values.first }
    }
}
