import CMongoc

/// A collection handle: cheap, a name and a client.
public struct MongoCollection: Sendable {
    public let database: MongoDatabase
    public let name: String

    private func with<T: Sendable>(_ body: @escaping @Sendable (OpaquePointer) throws -> T) async throws -> T {
        try await database.client.withClient { [database, name] client in
            let collection = mongoc_client_get_collection(client, database.name, name)!
            defer { mongoc_collection_destroy(collection) }
            return try body(collection)
        }
    }

    /// One bulk write; unordered unless asked. Per-item failures come back together as
    /// `MongoError.bulkWrite`, with the indexes of the failed items and what was applied.
    public func bulkWrite(_ models: [WriteModel], ordered: Bool = false) async throws -> BulkWriteResult {
        guard !models.isEmpty else { return BulkWriteResult() }
        return try await with { collection in
            let bulk = (["ordered": .bool(ordered)] as Document).withBSON {
                mongoc_collection_create_bulk_operation_with_opts(collection, $0)!
            }
            defer { mongoc_bulk_operation_destroy(bulk) }
            // Built once per bulk, not per item: per-item option documents showed up in profiles.
            let upsertOpts = bson_new()!
            defer { bson_destroy(upsertOpts) }
            bson_append_bool(upsertOpts, "upsert", 6, true)
            // Documents come from Swift values whose strings are valid UTF-8 already: libmongoc's
            // own validation pass was a measurable share of the CPU per document.
            bson_append_int32(upsertOpts, "validate", 8, 0)
            var error = bson_error_t()
            for model in models {
                let appended: Bool
                switch model {
                case .insertOne(let doc):
                    appended = doc.withBSON { mongoc_bulk_operation_insert_with_opts(bulk, $0, nil, &error) }
                case .updateOne(let filter, let update, let upsert):
                    appended = filter.withBSON { f in
                        update.withBSON { u in
                            mongoc_bulk_operation_update_one_with_opts(bulk, f, u, upsert ? upsertOpts : nil, &error)
                        }
                    }
                case .updateMany(let filter, let update, let upsert):
                    appended = filter.withBSON { f in
                        update.withBSON { u in
                            mongoc_bulk_operation_update_many_with_opts(bulk, f, u, upsert ? upsertOpts : nil, &error)
                        }
                    }
                case .replaceOne(let filter, let replacement, let upsert):
                    appended = filter.withBSON { f in
                        replacement.withBSON { r in
                            mongoc_bulk_operation_replace_one_with_opts(bulk, f, r, upsert ? upsertOpts : nil, &error)
                        }
                    }
                case .deleteOne(let filter):
                    appended = filter.withBSON { mongoc_bulk_operation_remove_one_with_opts(bulk, $0, nil, &error) }
                case .deleteMany(let filter):
                    appended = filter.withBSON { mongoc_bulk_operation_remove_many_with_opts(bulk, $0, nil, &error) }
                }
                guard appended else { throw MongoError.invalid(message: MongoError(error).description) }
            }
            return try execute(bulk)
        }
    }

    /// Inserts `count` documents, unordered, each written by `write` straight into one reusable
    /// buffer that libmongoc copies into the bulk: no `Document` tree, no allocation per document.
    public func insertMany(count: Int, _ write: @escaping @Sendable (Int, inout BSONWriter) -> Void) async throws -> BulkWriteResult {
        guard count > 0 else { return BulkWriteResult() }
        return try await with { collection in
            let bulk = (["ordered": .bool(false)] as Document).withBSON { mongoc_collection_create_bulk_operation_with_opts(collection, $0)! }
            defer { mongoc_bulk_operation_destroy(bulk) }
            let opts = bson_new()!
            defer { bson_destroy(opts) }
            bson_append_int32(opts, "validate", 8, 0)  // the writer's strings are valid UTF-8 already
            var writer = BSONWriter()
            defer { writer.release() }
            var error = bson_error_t()
            for i in 0..<count {
                writer.reset()
                write(i, &writer)
                guard mongoc_bulk_operation_insert_with_opts(bulk, writer.document, opts, &error) else {
                    throw MongoError.invalid(message: MongoError(error).description)
                }
            }
            return try execute(bulk)
        }
    }

    public func insertMany(_ documents: [Document]) async throws -> BulkWriteResult {
        try await bulkWrite(documents.map { .insertOne($0) })
    }

    public func insertOne(_ document: Document) async throws {
        _ = try await bulkWrite([.insertOne(document)])
    }

    @discardableResult
    public func updateOne(filter: Document, update: Document, upsert: Bool = false) async throws -> BulkWriteResult {
        try await bulkWrite([.updateOne(filter: filter, update: update, upsert: upsert)])
    }

    /// Returns how many documents were deleted.
    @discardableResult
    public func deleteMany(_ filter: Document) async throws -> Int {
        try await bulkWrite([.deleteMany(filter: filter)]).deleted
    }

    public func find(_ filter: Document = [:], options: FindOptions = FindOptions()) async throws -> [Document] {
        var opts = Document()
        if let sort = options.sort { opts.append("sort", .document(sort)) }
        if let limit = options.limit { opts.append("limit", .int64(Int64(limit))) }
        if let projection = options.projection { opts.append("projection", .document(projection)) }
        return try await with { [opts] collection in
            let cursor = filter.withBSON { f in opts.withBSON { o in mongoc_collection_find_with_opts(collection, f, o, nil)! } }
            return try drain(cursor)
        }
    }

    public func findOne(_ filter: Document) async throws -> Document? {
        try await find(filter, options: FindOptions(limit: 1)).first
    }

    public func count(_ filter: Document = [:]) async throws -> Int {
        try await with { collection in
            var error = bson_error_t()
            let n = filter.withBSON { mongoc_collection_count_documents(collection, $0, nil, nil, nil, &error) }
            guard n >= 0 else { throw MongoError(error) }
            return Int(n)
        }
    }

    public func aggregate(_ pipeline: [Document]) async throws -> [Document] {
        let wrapped: Document = ["pipeline": .array(pipeline.map { .document($0) })]
        return try await with { collection in
            let cursor = wrapped.withBSON { mongoc_collection_aggregate(collection, MONGOC_QUERY_NONE, $0, nil, nil)! }
            return try drain(cursor)
        }
    }

    /// Creates the indexes; ones that exist already are left as they are.
    public func createIndexes(_ indexes: [IndexModel]) async throws {
        let specs: [BSON] = indexes.map { index in
            var spec: Document = ["key": .document(index.keys), "name": .string(index.generatedName)]
            if index.unique { spec.append("unique", .bool(true)) }
            return .document(spec)
        }
        _ = try await database.runCommand(["createIndexes": .string(name), "indexes": .array(specs)])
    }

    public func listIndexes() async throws -> [Document] {
        try await with { collection in
            let cursor = mongoc_collection_find_indexes_with_opts(collection, nil)!
            return try drain(cursor)
        }
    }

    public func drop() async throws {
        do {
            _ = try await database.runCommand(["drop": .string(name)])
        } catch MongoError.server(let code, _, _) where code == 26 {}  // NamespaceNotFound: already gone
    }
}

/// Runs a bulk; on failure, its reply says what failed (see `MongoError.fromBulkReply`).
private func execute(_ bulk: OpaquePointer) throws -> BulkWriteResult {
    let reply = bson_new()!
    defer { bson_destroy(reply) }
    var error = bson_error_t()
    // A bulk reply lists every upserted id; only the counts are read on success.
    if mongoc_bulk_operation_execute(bulk, reply, &error) != 0 { return BulkWriteResult(counts: reply) }
    let doc = Document(bson: reply)
    throw MongoError.fromBulkReply(doc, MongoError(error, reply: doc))
}

private func drain(_ cursor: OpaquePointer) throws -> [Document] {
    defer { mongoc_cursor_destroy(cursor) }
    var result: [Document] = []
    var doc: OpaquePointer?
    while mongoc_cursor_next(cursor, &doc) { result.append(Document(bson: doc!)) }
    var error = bson_error_t()
    var reply: OpaquePointer?
    if mongoc_cursor_error_document(cursor, &error, &reply) {
        throw MongoError(error, reply: reply.map { Document(bson: $0) })
    }
    return result
}
