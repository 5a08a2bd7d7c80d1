import Events
import Mongo

/// One kind of history: which events it keeps, where, and how it is written, compensated and
/// queried. The archiver knows kinds only through their `HistoryKinds` table; adding one is an
/// entry and its document writer (docs/archiver.md, "Adding a history kind").
public struct HistoryKind: Sendable {
    /// Writes the fields of an event's document between `_id` and `sagaId`; the archiver writes
    /// the rest (`_id`, `sagaId`, `occurredAt`, `traceId`, `archivedAt`, `source`).
    public typealias DocumentWriter = @Sendable (HistoryEvent, inout BSONWriter) -> Void

    /// The name operators type (`archiver history NAME`).
    public var name: String
    /// Its documents' collection; its list in a compensation record is `deleted.<collection>`.
    public var collection: String
    /// The topic its events arrive on.
    public var topic: String
    /// The CloudEvent types it archives.
    public var types: [String]
    /// The saga failures that compensate its history (contract §4). A saga is compensated as a
    /// whole: any kind's failure deletes the saga's history of every kind.
    public var failureTypes: [String]
    /// The `data` fields its events carry, each with its slot.
    public var fields: [DataField]
    /// The document field telling its types apart, one value per type (`type`: CHARGE | DEDUCT).
    public var typeField: TypeField?
    /// Its collection's indexes, besides `_id`; queries and compensation need `{sagaId: 1}`.
    public var indexes: [IndexModel]
    /// The columns of `archiver history NAME`, and of its part of `archiver history saga`.
    public var columns: [HistoryColumn]
    public var sagaColumns: [HistoryColumn]
    public var writeFields: DocumentWriter

    public init(
        name: String, collection: String, topic: String, types: [String], failureTypes: [String], fields: [DataField],
        typeField: TypeField? = nil, indexes: [IndexModel], columns: [HistoryColumn], sagaColumns: [HistoryColumn],
        writeFields: @escaping DocumentWriter
    ) {
        self.name = name
        self.collection = collection
        self.topic = topic
        self.types = types
        self.failureTypes = failureTypes
        self.fields = fields
        self.typeField = typeField
        self.indexes = indexes
        self.columns = columns
        self.sagaColumns = sagaColumns
        self.writeFields = writeFields
    }

    public struct TypeField: Sendable {
        public var name: String
        /// In the order of the kind's `types`.
        public var values: [String]
        public init(name: String, values: [String]) {
            self.name = name
            self.values = values
        }
    }

    /// The index every kind has: a compensation finds a saga's documents by it.
    public static let sagaIndex = IndexModel(keys: ["sagaId": .int32(1)], name: "sagaId_1")
}

/// Kinds are told apart by their collection.
extension HistoryKind: Equatable, Hashable {
    public static func == (l: HistoryKind, r: HistoryKind) -> Bool { l.collection == r.collection }
    public func hash(into hasher: inout Hasher) { hasher.combine(collection) }
}

/// A column of `archiver history`: a document field and how it is shown.
public struct HistoryColumn: Sendable {
    public enum Format: Sendable { case time, text, amount }
    public var header: String
    public var field: String
    public var format: Format
    public init(_ header: String, _ field: String, _ format: Format = .text) {
        self.header = header
        self.field = field
        self.format = format
    }
}
