/// `commerce.balance.charged` / `commerce.balance.deducted` (contract §4).
public struct BalanceChange: Sendable, Equatable {
    public enum Kind: String, Sendable { case charge = "CHARGE", deduct = "DEDUCT" }
    public var eventId: String
    public var kind: Kind
    public var userId: Int64
    public var amount: Int64
    public var balanceBefore: Int64
    public var balanceAfter: Int64
    public var orderId: Int64?
    public var paymentId: Int64?
    public var sagaId: String
    public var occurredAtMs: Int64
    /// Its trace, when the event carried one: the document's `traceId`.
    public var traceParent: TraceParent? = nil
}

/// `commerce.payment.completed` (contract §4).
public struct PaymentCompletion: Sendable, Equatable {
    public var eventId: String
    public var paymentId: Int64
    public var orderId: Int64
    public var userId: Int64
    public var amount: Int64
    public var status: String
    public var sagaId: String
    public var occurredAtMs: Int64
    /// Its trace, when the event carried one: the document's `traceId`.
    public var traceParent: TraceParent? = nil
}

/// `commerce.order.status-change-failed` / `commerce.payment.failed`: the saga must be compensated.
public struct SagaFailure: Sendable, Equatable {
    /// The reason goes into the compensation record and event: kept to this many UTF-8 bytes.
    public static let maxReasonBytes = 1_000

    static func bounded(_ reason: String) -> String { Text.utf8Prefix(reason, maxBytes: maxReasonBytes) }

    public var eventId: String
    public var type: String
    public var sagaId: String
    public var reason: String
    /// Its trace, when the event carried one: the compensation record's `traceId`, and the
    /// parent of the `archive.history.deleted` event.
    public var traceParent: TraceParent? = nil
}

/// The event types the archiver acts on, in `types` order.
public enum ArchiveKind: Int, CaseIterable, Sendable {
    case balanceCharged, balanceDeducted, paymentCompleted, orderStatusChangeFailed, paymentFailed

    public static let types = [
        EventType.balanceCharged, EventType.balanceDeducted, EventType.paymentCompleted,
        EventType.orderStatusChangeFailed, EventType.paymentFailed,
    ]
    public var type: String { Self.types[rawValue] }
}

/// What the archiver does with an event.
public enum ArchiveEvent: Sendable, Equatable {
    case balance(BalanceChange)
    case payment(PaymentCompletion)
    case sagaFailed(SagaFailure)

    public var sagaId: String {
        switch self {
        case .balance(let b): b.sagaId
        case .payment(let p): p.sagaId
        case .sagaFailed(let f): f.sagaId
        }
    }

    public var kind: ArchiveKind {
        switch self {
        case .balance(let b): b.kind == .charge ? .balanceCharged : .balanceDeducted
        case .payment: .paymentCompleted
        case .sagaFailed(let f): f.type == EventType.paymentFailed ? .paymentFailed : .orderStatusChangeFailed
        }
    }

    /// The CloudEvent `type` this came from.
    public var type: String {
        switch self {
        case .balance(let b): b.kind == .charge ? EventType.balanceCharged : EventType.balanceDeducted
        case .payment: EventType.paymentCompleted
        case .sagaFailed(let f): f.type
        }
    }

    public var eventId: String {
        switch self {
        case .balance(let b): b.eventId
        case .payment(let p): p.eventId
        case .sagaFailed(let f): f.eventId
        }
    }
}

extension CloudEvent {
    /// The archiver's reading of this event: nil when its type is none of the archiver's
    /// business, a schema error when it is but a required field is missing or mistyped.
    /// - Parameter fallbackTimeMs: the Kafka timestamp, used when the event has no `time`.
    public func archiveEvent(fallbackTimeMs: Int64?) throws(EventDecodingError) -> ArchiveEvent? {
        guard let archiveKind else { return nil }
        switch archiveKind {
        case .balanceCharged, .balanceDeducted:
            return .balance(
                BalanceChange(
                    eventId: id, kind: archiveKind == .balanceCharged ? .charge : .deduct,
                    userId: try data.require(data.userId, "userId"), amount: try data.require(data.amount, "amount"),
                    balanceBefore: try data.require(data.balanceBefore, "balanceBefore"),
                    balanceAfter: try data.require(data.balanceAfter, "balanceAfter"),
                    orderId: try optional(data.orderId, "orderId"), paymentId: try optional(data.paymentId, "paymentId"),
                    sagaId: try requiredSaga(), occurredAtMs: try occurredAt(fallbackTimeMs), traceParent: traceParent))
        case .paymentCompleted:
            return .payment(
                PaymentCompletion(
                    eventId: id, paymentId: try data.require(data.paymentId, "paymentId"),
                    orderId: try data.require(data.orderId, "orderId"), userId: try data.require(data.userId, "userId"),
                    amount: try data.require(data.amount, "amount"), status: try data.require(data.status, "status"),
                    sagaId: try requiredSaga(), occurredAtMs: try occurredAt(fallbackTimeMs), traceParent: traceParent))
        case .orderStatusChangeFailed, .paymentFailed:
            return .sagaFailed(
                SagaFailure(
                    eventId: id, type: type, sagaId: try requiredSaga(),
                    reason: SagaFailure.bounded(try data.require(data.reason, "reason")), traceParent: traceParent))
        }
    }

    private func requiredSaga() throws(EventDecodingError) -> String {
        guard let sagaId, !sagaId.isEmpty else { throw .schema("sagaid is missing or empty") }
        return sagaId
    }

    private func occurredAt(_ fallback: Int64?) throws(EventDecodingError) -> Int64 {
        guard let ms = timeMs ?? fallback else { throw .schema("time is missing and the message has no timestamp") }
        return ms
    }

    /// An optional field may be absent, but not present with the wrong type.
    private func optional(_ value: Int64?, _ name: String) throws(EventDecodingError) -> Int64? {
        if value == nil, let problem = data.wrongTypes[name] { throw .schema("data.\(name) \(problem)") }
        return value
    }
}
