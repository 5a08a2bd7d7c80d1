import Events
import Mongo

/// The table of history kinds the archiver runs with: the one place that lists them. Decoding,
/// planning, writing, compensating, metrics, `archiver history` and the simulator's invariant
/// all go through it; an event carries its kind's index here, never the kind itself.
public struct HistoryKinds: Sendable {
    /// The contract's kinds (§5).
    public static let builtIn = HistoryKinds([.balance, .payment])

    public let all: [HistoryKind]
    /// The event types the kinds name, and what each means.
    public let schema: EventSchema
    /// Every kind's saga failures, once each.
    public let failureTypes: [String]

    public init(_ kinds: [HistoryKind]) {
        var failures: [String] = []
        for kind in kinds {
            precondition(kinds.filter { $0 == kind }.count == 1, "history kind \(kind.name): its collection is listed twice")
            precondition(kinds.filter { $0.name == kind.name }.count == 1, "history kind \(kind.name) is listed twice")
            precondition(kind.typeField.map { $0.values.count == kind.types.count } ?? true, "\(kind.name): one type value per type")
            for field in kind.fields {
                let slots = field.type == .integer ? DataValues.integerSlots : DataValues.textSlots
                let same = kind.fields.filter { $0.type == field.type && $0.slot == field.slot }
                precondition((0..<slots).contains(field.slot) && same.count == 1, "\(kind.name).\(field.name): slot taken or out of range")
            }
            for type in kind.failureTypes where !failures.contains(type) { failures.append(type) }
        }
        all = kinds
        failureTypes = failures
        schema = EventSchema(histories: kinds.map { ($0.types, $0.fields) }, failureTypes: failures)
    }

    public func index(of kind: HistoryKind) -> Int? { all.firstIndex(of: kind) }

    public func named(_ name: String) -> HistoryKind? { all.first { $0.name == name } }

    /// The topics the kinds' events and their failures arrive on, each once.
    public var topics: [String] {
        var topics: [String] = []
        for topic in all.map(\.topic) + failureTypes.map(CommerceEvent.topic(forType:)) where !topics.contains(topic) {
            topics.append(topic)
        }
        return topics
    }

    /// Each kind's collection, then the compensation records'.
    public var collections: [String] { all.map(\.collection) + [HistoryStore.compensationCollection] }
}
