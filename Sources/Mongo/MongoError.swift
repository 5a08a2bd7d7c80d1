import CMongoc

/// What went wrong talking to MongoDB, sorted by what the caller should do about it.
public enum MongoError: Error, CustomStringConvertible, Sendable {
    /// The server could not be reached or went away: wait and retry, never dead-letter.
    case connection(message: String)
    /// The server refused the request: `code` is MongoDB's (11000 is a duplicate key).
    case server(code: Int32, message: String, labels: [String])
    /// An unordered bulk write in which some items failed; the others were applied.
    case bulkWrite(BulkWriteFailure)
    /// The request could not be formed (bad URI, bad argument): retrying will not help.
    case invalid(message: String)
    /// The writes may have been applied but not with the durability asked for: the write as a
    /// whole failed, whatever its items say, and is retried (the archiver's writes are idempotent).
    case writeConcern(code: Int32, message: String)

    public var description: String {
        switch self {
        case .connection(let m): "MongoDB unreachable: \(m)"
        case .server(let code, let m, _): "MongoDB error \(code): \(m)"
        case .bulkWrite(let f):
            "MongoDB bulk write: \(f.errors.count) item(s) failed, first: \(f.errors.first.map { "\($0.code) \($0.message)" } ?? "-")"
        case .invalid(let m): "MongoDB request invalid: \(m)"
        case .writeConcern(let code, let m): "MongoDB write concern error \(code): \(m)"
        }
    }

    public var isDuplicateKey: Bool {
        switch self {
        case .server(let code, _, _): code == 11000
        case .bulkWrite(let f): !f.errors.isEmpty && f.errors.allSatisfy { $0.code == 11000 }
        default: false
        }
    }

    /// Worth retrying as is: connection trouble, or a server error MongoDB labels or codes as transient.
    public var isTransient: Bool {
        switch self {
        case .connection: true
        case .server(let code, _, let labels):
            labels.contains("RetryableWriteError") || labels.contains("TransientTransactionError")
                || MongoError.transientCodes.contains(code)
        case .bulkWrite(let f): f.errors.allSatisfy { MongoError.transientCodes.contains($0.code) } && !f.errors.isEmpty
        case .invalid: false
        case .writeConcern: true
        }
    }

    /// Network, shutdown, stepdown and timeout codes from MongoDB's error_codes.yml.
    public static let transientCodes: Set<Int32> = [6, 7, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436, 64, 50]

    init(_ error: bson_error_t, reply: Document? = nil) {
        let message = withUnsafeBytes(of: error.message) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        let labels = reply?["errorLabels"]?.arrayValue?.compactMap(\.stringValue) ?? []
        switch Int32(error.domain) {
        case Int32(MONGOC_ERROR_STREAM.rawValue), Int32(MONGOC_ERROR_SERVER_SELECTION.rawValue):
            self = .connection(message: message)
        case Int32(MONGOC_ERROR_SERVER.rawValue), Int32(MONGOC_ERROR_QUERY.rawValue),
            Int32(MONGOC_ERROR_WRITE_CONCERN.rawValue), Int32(MONGOC_ERROR_COLLECTION.rawValue):
            self = .server(code: Int32(error.code), message: message, labels: labels)
        case Int32(MONGOC_ERROR_CLIENT.rawValue) where error.code == MONGOC_ERROR_CLIENT_AUTHENTICATE.rawValue:
            self = .server(code: Int32(error.code), message: message, labels: labels)
        default:
            self = .invalid(message: message)
        }
    }
}

extension MongoError {
    /// What a failed bulk write means, from its reply and libmongoc's error.
    static func fromBulkReply(_ reply: Document, _ error: MongoError) -> MongoError {
        if case .connection = error { return error }
        if let wc = reply["writeConcernErrors"]?.arrayValue?.first?.documentValue ?? reply["writeConcernError"]?.documentValue {
            return .writeConcern(code: Int32(truncatingIfNeeded: wc["code"]?.int64Value ?? 0), message: wc["errmsg"]?.stringValue ?? "")
        }
        let items = (reply["writeErrors"]?.arrayValue ?? []).compactMap { $0.documentValue }.map {
            BulkWriteFailure.Item(
                index: Int($0["index"]?.int64Value ?? -1),
                code: Int32(truncatingIfNeeded: $0["code"]?.int64Value ?? 0),
                message: $0["errmsg"]?.stringValue ?? "",
                isDuplicateID: BulkWriteFailure.isDuplicateID($0))
        }
        if !items.isEmpty { return .bulkWrite(BulkWriteFailure(errors: items, result: BulkWriteResult(reply: reply))) }
        return error
    }
}

/// The failed items of a bulk write, by their index in the request, and what was applied.
public struct BulkWriteFailure: Sendable {
    public struct Item: Sendable {
        public var index: Int
        public var code: Int32
        public var message: String
        /// A duplicate key on `_id` itself, not on another unique index.
        public var isDuplicateID = false
    }

    /// MongoDB names the index in `keyPattern` (`{_id: 1}`); without it, the message says
    /// `index: _id_` (MongoDB) or ends in `._id` (the local Mongo-wire server, SQLite's wording).
    static func isDuplicateID(_ error: Document) -> Bool {
        guard error["code"]?.int64Value == 11000 else { return false }
        if let pattern = error["keyPattern"]?.documentValue { return pattern.keys == ["_id"] }
        let message = error["errmsg"]?.stringValue ?? ""
        return message.contains("index: _id_ ") || message.hasSuffix("._id")
    }
    public var errors: [Item]
    public var result: BulkWriteResult
}
