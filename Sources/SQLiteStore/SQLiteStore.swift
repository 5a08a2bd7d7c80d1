import Foundation
import GRDB
import SQLStore

/// A service's database in one SQLite file (WAL, one writer), through GRDB. Only one process
/// may use the file; it is the embedded default.
public final class SQLiteStore: SQLStore {
    public let pool: DatabasePool
    public var isShared: Bool { false }

    public init(path: String) throws {
        try FileManager.default.createDirectory(
            atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        var configuration = Configuration()
        // WAL with synchronous=NORMAL survives a process crash; only an OS crash can lose the last commits.
        configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = NORMAL") }
        configuration.busyMode = .timeout(10)
        pool = try DatabasePool(path: path, configuration: configuration)
    }

    public func write<T: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) throws -> T) async throws -> T {
        try await pool.write { db in try body(Connection(db)) }
    }

    public func read<T: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) throws -> T) async throws -> T {
        try await pool.read { db in try body(Connection(db)) }
    }

    /// Through GRDB's migrator, so files written before this store keep their migration record.
    public func migrate(_ migrations: [SQLMigration]) async throws {
        var migrator = DatabaseMigrator()
        for migration in migrations {
            migrator.registerMigration(migration.name) { db in try db.execute(sql: migration.sql) }
        }
        try migrator.migrate(pool)
    }

    public func watchAnnouncements(_ onChange: @escaping @Sendable ([String]?) -> Void) -> Task<Void, Never>? { nil }

    public func tryLead(_ name: String) async throws -> (any SQLLease)? { Sole() }

    public func newTransactionNumber() async throws -> UInt64? { nil }

    public func close() async { try? pool.close() }

    struct Sole: SQLLease {
        var isHeld: Bool { true }
        func release() async {}
    }

    /// Statements are prepared once per connection (GRDB's cache): preparing, with GRDB's
    /// authorizer on every column, cost about 8% of a service's CPU.
    final class Connection: SQLDatabase {
        let db: Database
        init(_ db: Database) { self.db = db }

        func execute(_ sql: String, _ arguments: [SQLValue]) throws {
            try db.cachedStatement(sql: Self.dialect(sql)).execute(arguments: Self.arguments(arguments))
        }

        func rows(_ sql: String, _ arguments: [SQLValue]) throws -> [SQLRow] {
            let statement = try db.cachedStatement(sql: Self.dialect(sql))
            let columns = statement.columnNames
            return try Row.fetchAll(statement, arguments: Self.arguments(arguments)).map { row in
                SQLRow(
                    columns: columns,
                    values: (0..<columns.count).map { index in
                        switch row[index] as DatabaseValue {
                        case let v where v.isNull: .null
                        case let v:
                            switch v.storage {
                            case .int64(let i): .integer(i)
                            case .double(let d): .text("\(d)")
                            case .string(let s): .text(s)
                            case .blob(let b): .blob(b)
                            case .null: .null
                            }
                        }
                    })
            }
        }

        /// The one writer holds the whole file: row locks are implied. SQLite has no
        /// `FOR UPDATE`, so a query's trailing one is dropped.
        static func dialect(_ sql: String) -> String {
            sql.hasSuffix(" FOR UPDATE") ? String(sql.dropLast(" FOR UPDATE".count)) : sql
        }

        /// SQLite has one writer: transactions never wait for each other's locks.
        func lock(_ keys: [String]) throws {}
        /// One writer: a row not visible yet is never committed later under an earlier key.
        func oldestRunningTransaction() throws -> UInt64? { nil }
        /// One process: nobody else to tell.
        func announce(_ subjects: [String]) throws {}

        static func arguments(_ values: [SQLValue]) -> StatementArguments {
            StatementArguments(
                values.map { value -> (any DatabaseValueConvertible)? in
                    switch value {
                    case .null: nil
                    case .integer(let i): i
                    case .text(let s): s
                    case .blob(let b): b
                    }
                })
        }
    }
}
