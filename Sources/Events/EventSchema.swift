/// What the archiver reads from events, as its table of history kinds lays it out: the `type`s it
/// acts on, what each means, and the `data` fields each carries. Decoding interns a known type
/// (no allocation) and reads only that type's fields.
public struct EventSchema: Sendable {
    public enum Role: Sendable, Equatable {
        /// Archived as history of the kind at this index of the table.
        case history(kind: Int)
        /// A saga failure: the saga's history is deleted and a compensation recorded.
        case failure
    }

    public let types: [String]
    public let roles: [Role]
    /// Per type, the `data` fields read.
    public let fields: [[DataField]]

    /// A failure's one field (contract §4).
    public static let reason = DataField.text("reason", slot: 0)

    /// - Parameter histories: per kind, the types it archives and the fields they carry.
    public init(histories: [(types: [String], fields: [DataField])], failureTypes: [String]) {
        var types: [String] = [], roles: [Role] = [], fields: [[DataField]] = []
        for (kind, history) in histories.enumerated() {
            for type in history.types {
                precondition(!types.contains(type), "event type \(type) belongs to two history kinds")
                types.append(type)
                roles.append(.history(kind: kind))
                fields.append(history.fields)
            }
        }
        for type in failureTypes {
            precondition(!types.contains(type), "event type \(type) is both archived and a saga failure, or listed twice")
            types.append(type)
            roles.append(.failure)
            fields.append([Self.reason])
        }
        self.types = types
        self.roles = roles
        self.fields = fields
    }

    /// No type known: every event is ignored.
    public static let none = EventSchema(histories: [], failureTypes: [])
}
