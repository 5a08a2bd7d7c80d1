import Archiver
import Mongo

enum HistoryConnection {
    /// Opens the history store, failing with one line when the server does not answer.
    static func open(_ options: ConnectionOptions) async throws -> HistoryStore {
        let client = try MongoClient(uri: options.resolvedMongoURI)
        do { try await client.ping() } catch { throw ArchiverError.unreachable("MongoDB at \(client.redactedURI): \(error)") }
        return HistoryStore(database: client.database(try options.resolvedDatabase))
    }
}
