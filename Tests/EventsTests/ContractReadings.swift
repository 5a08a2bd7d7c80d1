import Events

@testable import Archiver

/// The schema of the contract's kinds: what `archiver run` decodes with.
let contract = HistoryKinds.builtIn.schema

/// A balance change (contract §4) as the built-in balance kind reads it, for comparing whole.
struct BalanceChange: Equatable {
    enum Kind { case charge, deduct }
    var eventId: String, kind: Kind
    var userId: Int64, amount: Int64, balanceBefore: Int64, balanceAfter: Int64, orderId: Int64?, paymentId: Int64?
    var sagaId: String, occurredAtMs: Int64, traceParent: TraceParent? = nil
}

extension BalanceChange {
    /// nil unless `event` is a history event of the balance kind.
    init?(_ event: ArchiveEvent?) {
        guard case .history(let e) = event, e.kind == HistoryKinds.builtIn.index(of: .balance) else { return nil }
        self.init(
            eventId: e.eventId, kind: e.type == EventType.balanceCharged ? .charge : .deduct, userId: e.integer(BalanceHistory.userId),
            amount: e.integer(BalanceHistory.amount), balanceBefore: e.integer(BalanceHistory.balanceBefore),
            balanceAfter: e.integer(BalanceHistory.balanceAfter), orderId: e.data.integer(BalanceHistory.orderId),
            paymentId: e.data.integer(BalanceHistory.paymentId), sagaId: e.sagaId, occurredAtMs: e.occurredAtMs, traceParent: e.traceParent)
    }
}

/// A completed payment (contract §4) as the built-in payment kind reads it.
struct PaymentCompletion: Equatable {
    var orderId: Int64
    var status: String

    /// nil unless `event` is a history event of the payment kind.
    init?(_ event: ArchiveEvent?) {
        guard case .history(let e) = event, e.kind == HistoryKinds.builtIn.index(of: .payment) else { return nil }
        orderId = e.integer(PaymentHistory.orderId)
        status = e.text(PaymentHistory.status)
    }
}
