import Events
import SQLStore

/// One domain service: its tables, the events it reacts to, and how.
public protocol DomainService: Sendable {
    /// "user", "product", "order" or "payment": names its database file, consumer group and event source.
    var name: String { get }
    /// Topics whose events `handle` is given; events of types it does not know it ignores.
    var topics: [String] { get }
    /// The event types `handle` acts on. The consumer skips every other event of `topics`
    /// before touching the database: it would change nothing, so it is not recorded in the inbox
    /// either. nil hands every event to `handle`.
    var handledTypes: Set<String>? { get }
    /// This service's tables, in order, in the SQL both stores take (see `SQLMigration`).
    var migrations: [SQLMigration] { get }
    /// Applies one consumed event, inside the transaction that also records it in the inbox.
    /// The events returned are written to the outbox in that same transaction. Every change of
    /// a resource's status must emit an event whose `subject` names the resource ("order/12"):
    /// after the commit, that subject wakes the long polls waiting on it.
    func handle(_ event: CommerceEvent, in db: any SQLDatabase, node: ServiceNode) throws -> [CommerceEvent]
    /// The aggregates `handle` may lock rows of for `event` ("product/3"). On a store shared by
    /// several processes, a batch takes the keys of all its events first, in one fixed order
    /// (`SQLDatabase.lock`), so two batches never lock the same rows in opposite orders.
    /// `db` may be read, not changed.
    func lockKeys(for event: CommerceEvent, in db: any SQLDatabase) throws -> [String]
}

extension DomainService {
    public var handledTypes: Set<String>? { nil }

    /// Every aggregate the event names: its user, order, payment and ordered products.
    public func lockKeys(for event: CommerceEvent, in db: any SQLDatabase) throws -> [String] {
        event.data.aggregateKeys
    }
}

extension CommerceEventData {
    /// "user/1", "order/2", "payment/3", "product/4" for every id this data names.
    public var aggregateKeys: [String] {
        var keys: [String] = []
        if let userId { keys.append("user/\(userId)") }
        if let orderId { keys.append("order/\(orderId)") }
        if let paymentId { keys.append("payment/\(paymentId)") }
        for item in items ?? [] { keys.append("product/\(item.productId)") }
        return keys
    }
}
