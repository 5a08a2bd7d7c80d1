import Archiver

enum HistoryConnection {
    static func open(_ options: ConnectionOptions) async throws -> HistoryStore {
        try await HistoryStore.connect(uri: try options.resolvedMongoURI, database: try options.resolvedDatabase)
    }
}
