import Foundation

/// A service's database, whatever holds it (an SQLite file, a PostgreSQL schema). Domain code
/// sees only this: statements in the SQL both dialects share, `?` placeholders, values as
/// `SQLValue`. Stores differ in how they keep transactions apart, not in what a transaction
/// does: a `write` runs as if alone (SQLite: one writer; PostgreSQL: SERIALIZABLE, retried on
/// a serialization failure), so `body` may run more than once and must not act outside `db`.
public protocol SQLStore: Sendable {
    /// Runs `body` in one transaction and commits it; a throw rolls it back.
    func write<T: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) throws -> T) async throws -> T
    /// Runs `body` on a consistent snapshot, changing nothing.
    func read<T: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) throws -> T) async throws -> T
    /// Applies the migrations not applied yet, in order, each once even with several processes.
    func migrate(_ migrations: [SQLMigration]) async throws
    /// Whether other processes may commit to this store: then a reader waiting for a change
    /// cannot rely on this process's commits to learn of it and must look again now and then.
    var isShared: Bool { get }
    /// Calls `onChange` with what other processes' commits announced (`SQLDatabase.announce`),
    /// and with nil when announcements may have been missed (after a reconnection), until the
    /// task is cancelled. nil for a store of one process: nobody else commits.
    func watchAnnouncements(_ onChange: @escaping @Sendable ([String]?) -> Void) -> Task<Void, Never>?
    /// Leadership of `name` among the processes sharing this store, held until the lease is
    /// released or its holder dies; nil while another process holds it. A store of one process
    /// grants it at once.
    func tryLead(_ name: String) async throws -> (any SQLLease)?
    /// Closes connections; the store is not used afterwards.
    func close() async
}

/// Leadership held on a shared store: `isHeld` turns false if the store lost it (its
/// connection broke), and the holder must stop acting as leader.
public protocol SQLLease: Sendable {
    var isHeld: Bool { get }
    func release() async
}

/// One schema change, in SQLite's dialect; PostgreSQL stores translate its column types
/// (`INTEGER` to `BIGINT`, `BLOB` to `BYTEA`, `INTEGER PRIMARY KEY AUTOINCREMENT` to an
/// identity column) and drop `WITHOUT ROWID`.
public struct SQLMigration: Sendable {
    public let name: String
    public let sql: String

    public init(_ name: String, _ sql: String) {
        self.name = name
        self.sql = sql
    }
}

/// A store's failure, with the store's own message.
public struct SQLError: Error, CustomStringConvertible {
    public let description: String
    /// The store could not be reached or dropped the connection: trying again later may work.
    public let isTransient: Bool
    /// The connection broke while the transaction was committing: it may have been committed.
    /// Only a caller whose retry is idempotent (the inbox, an Idempotency-Key) may retry.
    public let mayHaveCommitted: Bool

    public init(_ description: String, transient: Bool = false, mayHaveCommitted: Bool = false) {
        self.description = description
        self.isTransient = transient
        self.mayHaveCommitted = mayHaveCommitted
    }
}
