import Events
import Mongo

extension HistoryKind {
    /// `balance_history` (contract §5): one document per balance charged or deducted.
    public static let balance = HistoryKind(
        name: "balance", collection: "balance_history", topic: Topic.balance,
        types: [EventType.balanceCharged, EventType.balanceDeducted], failureTypes: HistoryKind.contractFailures,
        fields: BalanceHistory.fields, typeField: TypeField(name: "type", values: BalanceHistory.typeValues),
        indexes: [IndexModel(keys: ["userId": .int32(1), "occurredAt": .int32(-1)], name: "userId_1_occurredAt_-1"), sagaIndex],
        columns: [
            HistoryColumn("OCCURRED AT", "occurredAt", .time), HistoryColumn("TYPE", "type"), HistoryColumn("AMOUNT", "amount", .amount),
            HistoryColumn("BEFORE", "balanceBefore", .amount), HistoryColumn("AFTER", "balanceAfter", .amount),
            HistoryColumn("ORDER", "orderId"), HistoryColumn("PAYMENT", "paymentId"), HistoryColumn("SAGA", "sagaId"),
            HistoryColumn("EVENT", "_id"),
        ],
        sagaColumns: [
            HistoryColumn("OCCURRED AT", "occurredAt", .time), HistoryColumn("TYPE", "type"), HistoryColumn("USER", "userId"),
            HistoryColumn("AMOUNT", "amount", .amount), HistoryColumn("EVENT", "_id"),
        ],
        writeFields: BalanceHistory.write)

    /// The saga failures of contract §4: each compensates every kind of the contract.
    public static let contractFailures = [EventType.orderStatusChangeFailed, EventType.paymentFailed]
}

/// `commerce.balance.charged` / `commerce.balance.deducted` (contract §4) and their document.
enum BalanceHistory {
    static let userId = DataField.integer("userId", slot: 0)
    static let amount = DataField.integer("amount", slot: 1)
    static let balanceBefore = DataField.integer("balanceBefore", slot: 2)
    static let balanceAfter = DataField.integer("balanceAfter", slot: 3)
    /// Absent for a charge.
    static let orderId = DataField.integer("orderId", slot: 4, required: false)
    static let paymentId = DataField.integer("paymentId", slot: 5, required: false)
    static let fields = [userId, amount, balanceBefore, balanceAfter, orderId, paymentId]
    static let typeValues = ["CHARGE", "DEDUCT"]

    static func write(_ e: HistoryEvent, into bson: inout BSONWriter) {
        bson.append("userId", int64: e.integer(userId))
        // The type is interned: comparing it compares two references.
        bson.append("type", e.type == EventType.balanceCharged ? typeValues[0] : typeValues[1])
        bson.append("amount", int64: e.integer(amount))
        bson.append("balanceBefore", int64: e.integer(balanceBefore))
        bson.append("balanceAfter", int64: e.integer(balanceAfter))
        if let orderId = e.data.integer(orderId) { bson.append("orderId", int64: orderId) }
        if let paymentId = e.data.integer(paymentId) { bson.append("paymentId", int64: paymentId) }
    }
}
