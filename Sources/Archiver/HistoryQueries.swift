import Mongo

/// The operators' read side (`archiver history`): each query is served by a contract index.
extension HistoryStore {
    /// A user's balance changes, newest first. `beforeMs` pages back through long histories.
    /// Index: balance_history {userId: 1, occurredAt: -1}.
    public func balanceHistory(userId: Int64, sinceMs: Int64? = nil, untilMs: Int64? = nil, beforeMs: Int64? = nil, limit: Int) async throws -> [Document] {
        try await balance.find(Self.filter(["userId": .int64(userId)], sinceMs: sinceMs, untilMs: untilMs, beforeMs: beforeMs),
                               options: FindOptions(sort: ["occurredAt": -1], limit: limit))
    }

    /// Payments of an order (index {orderId: 1}) or of a user (index {userId: 1, occurredAt: -1}), newest first.
    public func paymentHistory(orderId: Int64? = nil, userId: Int64? = nil, beforeMs: Int64? = nil, limit: Int) async throws -> [Document] {
        var base = Document()
        if let orderId { base.append("orderId", .int64(orderId)) }
        if let userId { base.append("userId", .int64(userId)) }
        return try await payment.find(Self.filter(base, sinceMs: nil, untilMs: nil, beforeMs: beforeMs),
                                      options: FindOptions(sort: ["occurredAt": -1], limit: limit))
    }

    /// Everything archived for one saga (index {sagaId: 1}) and its compensation record, if any.
    public func saga(_ sagaId: String) async throws -> (balance: [Document], payment: [Document], compensation: Document?) {
        async let b = balance.find(["sagaId": .string(sagaId)], options: FindOptions(sort: ["occurredAt": 1]))
        async let p = payment.find(["sagaId": .string(sagaId)], options: FindOptions(sort: ["occurredAt": 1]))
        async let c = compensations.findOne(["_id": .string(sagaId)])
        return try await (b, p, c)
    }

    static func filter(_ base: Document, sinceMs: Int64?, untilMs: Int64?, beforeMs: Int64?) -> Document {
        var range = Document()
        if let sinceMs { range.append("$gte", .datetime(sinceMs)) }
        if let upper = [untilMs, beforeMs].compactMap({ $0 }).min() { range.append("$lt", .datetime(upper)) }
        var filter = base
        if !range.isEmpty { filter.append("occurredAt", .document(range)) }
        return filter
    }
}
