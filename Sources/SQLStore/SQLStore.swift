import Foundation

/// A service's database, whatever holds it (an SQLite file, a PostgreSQL schema). Domain code
/// sees only this: statements in the SQL both dialects share, `?` placeholders, values as
/// `SQLValue`. A `write` is one transaction that sees other writers' commits as they happen
/// (SQLite: the only writer; PostgreSQL: READ COMMITTED), so a row read in order to change it
/// is read `... FOR UPDATE` (which SQLite ignores) or changed by one guarded statement. A
/// store may run `body` again after a deadlock or serialization failure, so it must not act
/// outside `db`.
public protocol SQLStore: Sendable {
    /// Runs `body` in one transaction and commits it; a throw rolls it back.
    func write<T: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) throws -> T) async throws -> T
    /// Runs `body` on a consistent snapshot, changing nothing.
    func read<T: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) throws -> T) async throws -> T
    /// Applies the migrations not applied yet, in order, each once even with several processes.
    func migrate(_ migrations: [SQLMigration]) async throws
    /// Whether other processes may write to this store at the same time: then a transaction
    /// that will lock several rows takes their keys first (`SQLDatabase.lock`).
    var isShared: Bool { get }
    /// Calls `onChange` with what other processes' commits announced (`SQLDatabase.announce`),
    /// and with nil when announcements may have been missed (after a reconnection), until the
    /// task is cancelled. nil for a store of one process: nobody else commits.
    func watchAnnouncements(_ onChange: @escaping @Sendable ([String]?) -> Void) -> Task<Void, Never>?
    /// Leadership of `name` among the processes sharing this store; nil while another process
    /// holds it. It ends when released, when its holder dies, and when its holder stops
    /// confirming it (frozen, or cut off from the store) for a few seconds; a store of one
    /// process grants it at once.
    func tryLead(_ name: String) async throws -> (any SQLLease)?
    /// A number above that of every write transaction begun so far: every write is numbered
    /// when it begins, before it inserts anything, so a row that a reader missed while it saw
    /// rows inserted after it belongs to a transaction numbered below what this returns
    /// afterwards; once `SQLDatabase.oldestRunningTransaction` passes it, that row is committed
    /// and visible, or never will be. nil for a store with a single writer.
    func newTransactionNumber() async throws -> UInt64?
    /// Closes connections; the store is not used afterwards.
    func close() async
}

/// Leadership held on a shared store: `isHeld` turns false as soon as the holder can no longer
/// be sure it still leads (its last confirmation is too old, or its connection broke), before
/// any other process can take over; the holder checks it before every act of a leader.
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

    /// A unique key was already there (another transaction inserted it first): running the
    /// transaction again sees that row.
    public let isUniqueViolation: Bool

    public init(_ description: String, transient: Bool = false, mayHaveCommitted: Bool = false, uniqueViolation: Bool = false) {
        self.description = description
        self.isTransient = transient
        self.mayHaveCommitted = mayHaveCommitted
        self.isUniqueViolation = uniqueViolation
    }
}
