import Events
import Mongo

extension HistoryKind {
    /// `payment_history` (contract §5): one document per `commerce.payment.completed`.
    public static let payment = HistoryKind(
        name: "payment", collection: "payment_history", topic: Topic.payment, types: [EventType.paymentCompleted],
        failureTypes: HistoryKind.contractFailures, fields: PaymentHistory.fields,
        indexes: [
            IndexModel(keys: ["orderId": .int32(1)], name: "orderId_1"),
            IndexModel(keys: ["userId": .int32(1), "occurredAt": .int32(-1)], name: "userId_1_occurredAt_-1"), sagaIndex,
        ],
        columns: [
            HistoryColumn("OCCURRED AT", "occurredAt", .time), HistoryColumn("PAYMENT", "paymentId"), HistoryColumn("ORDER", "orderId"),
            HistoryColumn("USER", "userId"), HistoryColumn("AMOUNT", "amount", .amount), HistoryColumn("STATUS", "status"),
            HistoryColumn("SAGA", "sagaId"), HistoryColumn("EVENT", "_id"),
        ],
        sagaColumns: [
            HistoryColumn("OCCURRED AT", "occurredAt", .time), HistoryColumn("PAYMENT", "paymentId"), HistoryColumn("ORDER", "orderId"),
            HistoryColumn("AMOUNT", "amount", .amount), HistoryColumn("STATUS", "status"), HistoryColumn("EVENT", "_id"),
        ],
        writeFields: PaymentHistory.write)
}

/// `commerce.payment.completed` (contract §4) and its document.
enum PaymentHistory {
    static let paymentId = DataField.integer("paymentId", slot: 0)
    static let orderId = DataField.integer("orderId", slot: 1)
    static let userId = DataField.integer("userId", slot: 2)
    static let amount = DataField.integer("amount", slot: 3)
    static let status = DataField.text("status", slot: 0)
    static let fields = [paymentId, orderId, userId, amount, status]

    static func write(_ e: HistoryEvent, into bson: inout BSONWriter) {
        bson.append("paymentId", int64: e.integer(paymentId))
        bson.append("orderId", int64: e.integer(orderId))
        bson.append("userId", int64: e.integer(userId))
        bson.append("amount", int64: e.integer(amount))
        bson.append("status", e.text(status))
    }
}
