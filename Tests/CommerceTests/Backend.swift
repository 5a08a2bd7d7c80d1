import Foundation
import Logging
import NIOPosix
import PostgresNIO
import Testing

let postgresURL = ProcessInfo.processInfo.environment["POSTGRES_URL"] ?? "postgres://commerce@127.0.0.1:21432/postgres"

/// Where a scenario's services keep their state: SQLite files in a folder, or one PostgreSQL
/// database of the scenario's own (created and dropped by it) on the server of `POSTGRES_URL`.
enum Backend: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite
    case postgres

    var testDescription: String { rawValue }

    /// The `--database-url` of database `name` on the test server.
    static func url(of name: String) -> String {
        let base = postgresURL[..<(postgresURL.lastIndex(of: "/") ?? postgresURL.endIndex)]
        return "\(base)/\(name)"
    }

    /// Runs `sql` on the test server's admin database, outside any transaction (CREATE/DROP DATABASE).
    static func admin(_ sql: String) async throws { _ = try await column(sql, as: Bool.self) }

    /// The first column of `sql`'s rows, run on the test server's admin database.
    static func column<T: PostgresDecodable>(_ sql: String, as type: T.Type) async throws -> [T] {
        let url = URLComponents(string: postgresURL)!
        let configuration = PostgresConnection.Configuration(
            host: url.host ?? "127.0.0.1", port: url.port ?? 5432, username: url.user ?? "commerce", password: url.password,
            database: String(url.path.dropFirst()), tls: .disable)
        let connection = try await PostgresConnection.connect(configuration: configuration, id: 1, logger: Logger(label: "test-admin"))
        defer { Task { try? await connection.close() } }
        var values: [T] = []
        for try await row in try await connection.query(PostgresQuery(unsafeSQL: sql), logger: Logger(label: "test-admin")) {
            values.append(try row.decode(T.self))
        }
        return values
    }
}
