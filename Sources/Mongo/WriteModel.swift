import CMongoc

/// One operation of a bulk write, mapped one to one to `mongoc_bulk_operation_*_with_opts`.
public enum WriteModel: Sendable {
    case insertOne(Document)
    case updateOne(filter: Document, update: Document, upsert: Bool)
    case updateMany(filter: Document, update: Document, upsert: Bool)
    case replaceOne(filter: Document, replacement: Document, upsert: Bool)
    case deleteOne(filter: Document)
    case deleteMany(filter: Document)
}

public struct BulkWriteResult: Sendable, Equatable {
    public var inserted = 0
    public var matched = 0
    public var modified = 0
    public var deleted = 0
    public var upserted = 0

    init(reply: Document) {
        inserted = Int(reply["nInserted"]?.int64Value ?? 0)
        matched = Int(reply["nMatched"]?.int64Value ?? 0)
        modified = Int(reply["nModified"]?.int64Value ?? 0)
        deleted = Int(reply["nRemoved"]?.int64Value ?? 0)
        upserted = Int(reply["nUpserted"]?.int64Value ?? 0)
    }
    public init() {}

    init(counts reply: OpaquePointer) {
        func count(_ key: String) -> Int {
            let it = newIterator()
            defer { freeIterator(it) }
            guard bson_iter_init_find(it, reply, key) else { return 0 }
            return Int(bson_iter_as_int64(it))
        }
        inserted = count("nInserted")
        matched = count("nMatched")
        modified = count("nModified")
        deleted = count("nRemoved")
        upserted = count("nUpserted")
    }
}

/// An index to create: keys in order (1 ascending, -1 descending) and an optional name.
public struct IndexModel: Sendable {
    public var keys: Document
    public var name: String?
    public var unique: Bool
    public init(keys: Document, name: String? = nil, unique: Bool = false) {
        self.keys = keys
        self.name = name
        self.unique = unique
    }

    var generatedName: String {
        name ?? keys.fields.map { "\($0.key)_\($0.value.int64Value.map(String.init) ?? "x")" }.joined(separator: "_")
    }
}

/// Options of a find.
public struct FindOptions: Sendable {
    public var sort: Document?
    public var limit: Int?
    public var projection: Document?
    public init(sort: Document? = nil, limit: Int? = nil, projection: Document? = nil) {
        self.sort = sort
        self.limit = limit
        self.projection = projection
    }
}
