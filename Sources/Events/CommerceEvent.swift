import Foundation

/// A commerce domain event as the services exchange it: the contract's CloudEvents envelope
/// (§2) with a flat `data` of which each event type uses a subset. Unknown attributes and
/// unknown `data` fields are ignored when decoding, as the contract asks.
public struct CommerceEvent: Codable, Sendable, Equatable {
    public var specversion: String
    public var id: String
    public var source: String
    public var type: String
    public var subject: String?
    public var time: String
    public var datacontenttype: String?
    public var sagaid: String?
    /// W3C `traceparent` (contract §2), kept only when well formed: a malformed one is dropped
    /// on decoding, never an error.
    public var traceparent: String?
    public var data: CommerceEventData

    public init(
        id: String = UUID().uuidString.lowercased(), source: String, type: String, subject: String? = nil,
        timeMs: Int64, sagaId: String, data: CommerceEventData
    ) {
        specversion = "1.0"
        self.id = id
        self.source = source
        self.type = type
        self.subject = subject
        time = Timestamp.format(timeMs)
        datacontenttype = "application/json"
        sagaid = sagaId
        self.data = data
    }

    /// The same event as a hop of `trace`, unless it already has a context of its own.
    public func continuing(_ trace: TraceParent?) -> CommerceEvent {
        guard traceparent == nil, let trace else { return self }
        var event = self
        event.traceparent = trace.child().text
        return event
    }

    /// The topic an event of this type belongs to (contract §3).
    public var topic: String { Self.topic(forType: type) }

    /// The Kafka key: the aggregate the topic is keyed by (contract §3).
    public var key: String {
        switch topic {
        case Topic.balance: data.userId.map(String.init) ?? ""
        default: data.orderId.map(String.init) ?? ""
        }
    }

    public static func topic(forType type: String) -> String {
        if type.hasPrefix("commerce.order.") { return Topic.order }
        if type.hasPrefix("commerce.stock.") || type.hasPrefix("commerce.cart.") { return Topic.product }
        if type.hasPrefix("commerce.balance.") { return Topic.balance }
        if type.hasPrefix("commerce.payment.") { return Topic.payment }
        return Topic.deadLetters
    }

    // encoded() and decode(_:) are in CommerceEventCodec.swift: by hand, not through Foundation.
}

/// One line of an order.
public struct OrderItem: Codable, Sendable, Equatable, Hashable {
    public var productId: Int64
    public var quantity: Int64
    public init(productId: Int64, quantity: Int64) {
        self.productId = productId
        self.quantity = quantity
    }
}

/// The union of the commerce events' `data` fields; absent ones are omitted on the wire.
public struct CommerceEventData: Codable, Sendable, Equatable {
    public var userId: Int64?
    public var orderId: Int64?
    public var paymentId: Int64?
    public var amount: Int64?
    public var balanceBefore: Int64?
    public var balanceAfter: Int64?
    public var items: [OrderItem]?
    public var status: String?
    public var reason: String?

    public init(
        userId: Int64? = nil, orderId: Int64? = nil, paymentId: Int64? = nil, amount: Int64? = nil,
        balanceBefore: Int64? = nil, balanceAfter: Int64? = nil, items: [OrderItem]? = nil,
        status: String? = nil, reason: String? = nil
    ) {
        self.userId = userId
        self.orderId = orderId
        self.paymentId = paymentId
        self.amount = amount
        self.balanceBefore = balanceBefore
        self.balanceAfter = balanceAfter
        self.items = items
        self.status = status
        self.reason = reason
    }
}
