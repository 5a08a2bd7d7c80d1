import CommerceAPI
import Events
import Hummingbird
import SQLStore
import ServiceRuntime

/// `POST /payments` starts a payment saga; `GET /payments/{id}` shows where it is, and can wait for it to end.
public enum PaymentAPI {
    struct NewPayment: Codable {
        let orderId: Int64
        let userId: Int64
        let amount: Int64
    }

    public static func register(on router: Router<CommerceContext>, node: ServiceNode) {
        router.post("/payments") { request, context -> Response in
            let post = try await Post(NewPayment.self, from: request)
            let new = post.body
            guard new.orderId > 0, new.userId > 0 else { throw APIError.badRequest("orderId and userId must be positive integers") }
            try context.requireActing(for: new.userId)
            guard new.amount > 0, new.amount <= 1_000_000_000_000 else {
                throw APIError.badRequest("amount must be 1-1000000000000, got \(new.amount)")
            }
            return try await node.respond(to: post, status: .accepted) { db in
                let id = try db.insert(
                    "INSERT INTO payments (order_id, user_id, amount, status) VALUES (?, ?, ?, 'REQUESTED')", new.orderId, new.userId, new.amount)
                let payment = Payment(
                    paymentId: id, orderId: new.orderId, userId: new.userId, amount: new.amount, status: "REQUESTED", sagaId: "pay-\(id)")
                let event = node.event(
                    EventType.paymentRequested, saga: payment.sagaId, subject: "payment/\(id)",
                    .init(userId: new.userId, orderId: new.orderId, paymentId: id, amount: new.amount, status: "REQUESTED"))
                return (payment, [event])
            }
        }

        // `?waitFor=COMPLETED&timeoutMs=5000`: a long poll, see StatusWait.
        router.get("/payments/:paymentId") { request, context -> Response in
            let id = try context.id("paymentId")
            let caller = try context.caller()
            let wait = try StatusWait.parse(request, resource: "payment", statuses: Payment.statuses, initial: "REQUESTED")
            guard
                let payment = try await node.read(
                    "payment/\(id)", waiting: wait, final: ["COMPLETED", "FAILED"], status: { $0.status },
                    { db in try Payment.fetch(id, db).flatMap { caller.mayActFor(user: $0.userId) ? $0 : nil } })
                // Another user's payment is answered as one that does not exist: nothing leaks.
            else { throw APIError.notFound("payment \(id) does not exist") }
            return try JSON.response(payment)
        }
    }
}
