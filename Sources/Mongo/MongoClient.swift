import CMongoc
import Dispatch
import Foundation

private let mongocInitialized: Void = {
    MongoClient.disableSharedMemoryCounters()  // a no-op when main did it first
    // Set before mongoc_init so that its own warnings go through the handler too. The default
    // handler prints debug lines to stdout; callers get errors as MongoError, so only warnings
    // and worse are kept, on stderr.
    mongoc_log_set_handler(
        { level, domain, message, _ in
            guard level.rawValue <= MONGOC_LOG_LEVEL_WARNING.rawValue, let domain, let message else { return }
            FileHandle.standardError.write(Data("mongoc \(String(cString: domain)): \(String(cString: message))\n".utf8))
        }, nil)
    mongoc_init()
}()

extension MongoClient {
    /// Counters in shared memory serve only libmongoc's own stats tool, and a killed process
    /// leaves its /dev/shm/mongoc-<pid> behind, which made a later process with that pid warn:
    /// sets MONGOC_DISABLE_SHM=1 unless the operator set it. An executable calls this first in
    /// `main`, before any other thread: glibc's `setenv` adding a variable while another thread
    /// reads the environment is a use-after-free. The first client calls it too (for tests and
    /// other library users), where the variable then already exists and nothing is reallocated.
    public static func disableSharedMemoryCounters() { setenv("MONGOC_DISABLE_SHM", "1", 0) }
}

/// A pool of libmongoc clients for one URI. Every operation checks a client out of the pool
/// on a dedicated dispatch queue, so blocking libmongoc calls never occupy Swift's cooperative pool.
public final class MongoClient: @unchecked Sendable {
    private let pool: OpaquePointer
    private let queue = DispatchQueue(label: "mongo-client", attributes: .concurrent)
    /// The URI with any password masked: the only form fit for logs and errors.
    public let redactedURI: String

    /// - Parameter serverSelectionTimeoutMs: used unless the URI sets its own; bounds how long
    ///   an unreachable server takes to surface as `MongoError.connection`.
    public init(uri: String, appName: String = "commerce-archiver", serverSelectionTimeoutMs: Int32 = 5_000) throws {
        _ = mongocInitialized
        redactedURI = MongoClient.redact(uri)
        var error = bson_error_t()
        guard let parsed = mongoc_uri_new_with_error(uri, &error) else {
            throw MongoError.invalid(message: "bad MONGO_URI \(redactedURI): \(MongoError(error).description)")
        }
        defer { mongoc_uri_destroy(parsed) }
        if !mongoc_uri_has_option(parsed, MONGOC_URI_SERVERSELECTIONTIMEOUTMS) {
            mongoc_uri_set_option_as_int32(parsed, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, serverSelectionTimeoutMs)
        }
        if !mongoc_uri_has_option(parsed, MONGOC_URI_CONNECTTIMEOUTMS) {
            mongoc_uri_set_option_as_int32(parsed, MONGOC_URI_CONNECTTIMEOUTMS, serverSelectionTimeoutMs)
        }
        if mongoc_uri_get_appname(parsed) == nil { mongoc_uri_set_appname(parsed, appName) }
        guard let pool = mongoc_client_pool_new(parsed) else {
            throw MongoError.invalid(message: "cannot create a client pool for \(redactedURI)")
        }
        mongoc_client_pool_set_error_api(pool, Int32(MONGOC_ERROR_API_VERSION_2))
        self.pool = pool
    }

    deinit { mongoc_client_pool_destroy(pool) }

    public func database(_ name: String) -> MongoDatabase { MongoDatabase(client: self, name: name) }

    /// A round trip to the server: the bounded way to learn it is unreachable.
    public func ping() async throws {
        _ = try await database("admin").runCommand(["ping": .int32(1)])
    }

    func withClient<T: Sendable>(_ body: @escaping @Sendable (OpaquePointer) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { [self] in
                let client = mongoc_client_pool_pop(pool)!
                defer { mongoc_client_pool_push(pool, client) }
                continuation.resume(with: Result { try body(client) })
            }
        }
    }

    /// Masks the password. Credentials end at the last '@' before the host list: a password
    /// with an unescaped '@' must not leak its tail.
    static func redact(_ uri: String) -> String {
        maskPasswordOptions(maskCredentials(uri))
    }

    private static func maskCredentials(_ uri: String) -> String {
        // A URI without "://" may still hold "user:password@": everything before the last '@' goes.
        guard let scheme = uri.range(of: "://") else { return uri.lastIndex(of: "@").map { "***" + uri[$0...] } ?? uri }
        // The last '@' of the whole URI: a password may hold '/', '?' or '@' unescaped. Masking too
        // much (an '@' in the options) is safe; too little is not.
        guard let at = uri[scheme.upperBound...].lastIndex(of: "@") else { return uri }
        let credentials = uri[scheme.upperBound..<at]
        guard let colon = credentials.firstIndex(of: ":") else { return uri }
        return String(uri[..<uri.index(after: colon)]) + "***" + String(uri[at...])
    }

    /// Option values that are passwords (`tlsCertificateKeyFilePassword=...`), masked.
    private static func maskPasswordOptions(_ uri: String) -> String {
        guard let query = uri.firstIndex(of: "?") else { return uri }
        let options = uri[uri.index(after: query)...].split(separator: "&", omittingEmptySubsequences: false).map { option in
            guard let equals = option.firstIndex(of: "="), option[..<equals].lowercased().contains("password") else { return String(option) }
            return option[...equals] + "***"
        }
        return uri[...query] + options.joined(separator: "&")
    }
}

public struct MongoDatabase: Sendable {
    let client: MongoClient
    public let name: String

    public func collection(_ name: String) -> MongoCollection { MongoCollection(database: self, name: name) }

    public func runCommand(_ command: Document) async throws -> Document {
        try await client.withClient { [name] c in
            let db = mongoc_client_get_database(c, name)!
            defer { mongoc_database_destroy(db) }
            let reply = bson_new()!
            defer { bson_destroy(reply) }
            var error = bson_error_t()
            let ok = command.withBSON { mongoc_database_command_simple(db, $0, nil, reply, &error) }
            let doc = Document(bson: reply)
            guard ok else { throw MongoError(error, reply: doc) }
            return doc
        }
    }

    /// Creates the collection; one that exists already is fine.
    public func createCollection(_ collection: String) async throws {
        do {
            _ = try await runCommand(["create": .string(collection)])
        } catch MongoError.server(let code, _, _) where code == 48 {}
    }

    public func collectionNames() async throws -> [String] {
        let reply = try await runCommand(["listCollections": .int32(1), "nameOnly": .bool(true)])
        return reply["cursor"]?.documentValue?["firstBatch"]?.arrayValue?.compactMap { $0.documentValue?["name"]?.stringValue } ?? []
    }

    public func drop() async throws { _ = try await runCommand(["dropDatabase": .int32(1)]) }
}
