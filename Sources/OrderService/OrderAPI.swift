import CommerceAPI
import Events
import Foundation
import Hummingbird
import SQLStore
import ServiceRuntime

/// `POST /orders` starts an order saga; `GET /orders/{id}` shows where it is, and can wait for it to move.
public enum OrderAPI {
    struct NewOrder: Codable {
        let userId: Int64
        let items: [OrderItem]
    }

    struct OrderView: Encodable, Sendable {
        let order: Order
        enum Keys: String, CodingKey { case orderId, userId, items, amount, status, reason, paymentId, sagaId }
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: Keys.self)
            try c.encode(order.orderId, forKey: .orderId)
            try c.encode(order.userId, forKey: .userId)
            try c.encode(order.items, forKey: .items)
            try c.encodeIfPresent(order.amount, forKey: .amount)
            try c.encode(order.status, forKey: .status)
            try c.encodeIfPresent(order.reason, forKey: .reason)
            try c.encodeIfPresent(order.paymentId, forKey: .paymentId)
            try c.encode(order.sagaId, forKey: .sagaId)
        }
    }

    public static func register(on router: Router<CommerceContext>, node: ServiceNode) {
        router.post("/orders") { request, context -> Response in
            let post = try await Post(NewOrder.self, from: request)
            let new = post.body
            guard new.userId > 0 else { throw APIError.badRequest("userId must be a positive integer") }
            try context.requireActing(for: new.userId)
            guard (1...100).contains(new.items.count) else { throw APIError.badRequest("items must hold 1-100 lines, got \(new.items.count)") }
            for item in new.items {
                guard item.productId > 0 else { throw APIError.badRequest("items[].productId must be a positive integer") }
                guard (1...1_000_000).contains(item.quantity) else {
                    throw APIError.badRequest("items[].quantity must be 1-1000000, got \(item.quantity)")
                }
            }
            return try await node.respond(to: post, status: .accepted) { db in
                let id = try db.insert(
                    "INSERT INTO orders (user_id, items, status) VALUES (?, ?, 'PENDING')", new.userId, OrderItem.encodeList(new.items))
                let order = Order(orderId: id, userId: new.userId, items: new.items, status: .pending)
                let event = node.event(
                    EventType.orderRequested, saga: order.sagaId, subject: "order/\(order.orderId)",
                    .init(userId: new.userId, orderId: order.orderId, items: new.items, status: "PENDING"))
                return (OrderView(order: order), [event])
            }
        }

        // `?waitFor=PLACED,CANCELLED&timeoutMs=5000`: a long poll, see StatusWait.
        router.get("/orders/:orderId") { request, context -> Response in
            let id = try context.id("orderId")
            let caller = try context.caller()
            let wait = try StatusWait.parse(
                request, resource: "order", statuses: Order.Status.allCases.map(\.rawValue), initial: Order.Status.pending.rawValue)
            guard
                let order = try await node.read(
                    "order/\(id)", waiting: wait, final: [Order.Status.cancelled.rawValue], status: { $0.status.rawValue },
                    { db in try Order.fetch(id, db).flatMap { caller.mayActFor(user: $0.userId) ? $0 : nil } })
                // Another user's order is answered as one that does not exist: nothing leaks.
            else { throw APIError.notFound("order \(id) does not exist") }
            return try JSON.response(OrderView(order: order))
        }
    }
}
