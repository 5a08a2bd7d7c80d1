import CommerceAPI
import Events
import GRDB
import Hummingbird
import ServiceRuntime

/// `POST /payments` starts a payment saga; `GET /payments/{id}` shows where it is.
public enum PaymentAPI {
    struct NewPayment: Codable {
        let orderId: Int64
        let userId: Int64
        let amount: Int64
    }

    public static func register(on router: Router<BasicRequestContext>, node: ServiceNode) {
        router.post("/payments") { request, _ -> Response in
            let post = try await Post(NewPayment.self, from: request)
            let new = post.body
            guard new.orderId > 0, new.userId > 0 else { throw APIError.badRequest("orderId and userId must be positive integers") }
            guard new.amount > 0, new.amount <= 1_000_000_000_000 else {
                throw APIError.badRequest("amount must be 1-1000000000000, got \(new.amount)")
            }
            return try await node.respond(to: post, status: .accepted) { db in
                try db.execute(
                    sql: "INSERT INTO payments (order_id, user_id, amount, status) VALUES (?, ?, ?, 'REQUESTED')",
                    arguments: [new.orderId, new.userId, new.amount])
                let id = db.lastInsertedRowID
                let payment = Payment(
                    paymentId: id, orderId: new.orderId, userId: new.userId, amount: new.amount, status: "REQUESTED", sagaId: "pay-\(id)")
                let event = node.event(
                    EventType.paymentRequested, saga: payment.sagaId, subject: "payment/\(id)",
                    .init(userId: new.userId, orderId: new.orderId, paymentId: id, amount: new.amount, status: "REQUESTED"))
                return (payment, [event])
            }
        }

        router.get("/payments/:paymentId") { _, context -> Response in
            let id = try context.id("paymentId")
            guard let payment = try await node.read({ db in try Payment.fetch(id, db) }) else {
                throw APIError.notFound("payment \(id) does not exist")
            }
            return try JSON.response(payment)
        }
    }
}
