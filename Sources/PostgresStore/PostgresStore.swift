import Foundation
import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import SQLStore
import Synchronization

/// A service's database as one schema of a PostgreSQL database, shared by every process of
/// the service. Writes run READ COMMITTED: domain code locks what it reads to change (`FOR
/// UPDATE`, or keys first with `lock`), so writers wait for each other briefly instead of
/// failing and running again. Each write is numbered (`pg_current_xact_id`) when it begins,
/// in the same round trip as its BEGIN: see `SQLStore.newTransactionNumber`.
///
/// Statements are blocking calls on threads of its own (one connection each), not on the
/// event loops: the domain code inside a transaction is synchronous, as on SQLite.
public final class PostgresStore: SQLStore {
    public let url: PostgresURL
    /// Where this service's tables live; created by `migrate`.
    public let schema: String
    public var isShared: Bool { true }
    private let threads: NIOThreadPool
    private let idle = Mutex<[PostgresConnection]>([])
    private let nextID = Atomic<Int>(0)
    private let statements = Mutex<[String: String]>([:])
    private let logger: Logger
    /// Names this store's announcements, so that it does not wake itself twice for its own commits.
    let token = String(UInt64.random(in: .min ... .max), radix: 36)
    /// The connection that asks for leadership, kept between attempts (one per store, not one per ask).
    private let probe = Mutex<PostgresConnection?>(nil)
    /// A write that keeps failing on a deadlock or serialization failure (none is expected:
    /// writers lock in one order) gives up after this many attempts.
    static let maxAttempts = 10
    /// How long a relay's leadership outlives its last confirmation on the server: the
    /// server ends an idle leader's session after this (`idle_session_timeout`), which frees
    /// its lock for a successor; the leader stops acting a second earlier.
    public static let leaseTimeout: Duration = .seconds(5)

    /// Called before a write transaction is run again after a deadlock or serialization failure.
    private let conflictRetried: @Sendable () -> Void
    /// The URL's TLS, made once (a context reads its CA file); an unreadable file fails each connect.
    private let connectionTLS: Result<PostgresConnection.Configuration.TLS, any Error>

    /// - Parameters:
    ///   - connections: connections (and threads) used for transactions at once.
    ///   - conflictRetried: told of each retry after a conflict (a metric's counter).
    public init(url: PostgresURL, schema: String, connections: Int = 4, logger: Logger, conflictRetried: @escaping @Sendable () -> Void = {}) {
        self.url = url
        self.schema = schema
        self.logger = logger
        self.conflictRetried = conflictRetried
        connectionTLS = Result { try url.connectionTLS() }
        threads = NIOThreadPool(numberOfThreads: max(1, connections))
        threads.start()
    }

    public func write<T: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) throws -> T) async throws -> T {
        try await threads.runIfActive { try self.transaction(["BEGIN", "SELECT pg_current_xact_id()"], retrying: true, body) }
    }

    /// A body of one statement runs on its own (one statement is one snapshot already); one
    /// that asks for a second is run again from the start in a REPEATABLE READ transaction. Most
    /// reads are one statement (a long poll's, an Idempotency-Key's lookup), and BEGIN and COMMIT
    /// tripled their round trips: two thirds of all statements in a saga benchmark.
    public func read<T: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) throws -> T) async throws -> T {
        try await threads.runIfActive {
            do { return try self.alone(body) } catch is Session.SecondStatement {
                return try self.transaction(["BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"], retrying: false, body)
            }
        }
    }

    /// `body` with at most one statement, outside a transaction.
    private func alone<T>(_ body: (any SQLDatabase) throws -> T) throws -> T {
        let connection = try take()
        let session = Session(store: self, connection: connection, statementLimit: 1)
        do {
            let value = try body(session)
            try session.flush()
            give(connection)
            return value
        } catch {
            _ = try? session.flush()
            if connection.isClosed || Self.isConnectionFailure(error) { _ = try? connection.close().wait() } else { give(connection) }
            throw Self.describe(error)
        }
    }

    /// In one transaction under a lock of this schema's, so that processes starting together
    /// apply each migration once; DDL is translated from SQLite's types.
    public func migrate(_ migrations: [SQLMigration]) async throws {
        let schema = quoted(self.schema)
        try await threads.runIfActive {
            let connection = try self.take()
            do {
                try self.simple(connection, "BEGIN")
                try self.simple(
                    connection, "SELECT pg_advisory_xact_lock(hashtext('\(self.schema.replacingOccurrences(of: "'", with: "''")).migrations'))")
                try self.simple(connection, "CREATE SCHEMA IF NOT EXISTS \(schema)")
                try self.simple(connection, "CREATE TABLE IF NOT EXISTS \(schema).schema_migrations (name TEXT PRIMARY KEY)")
                let applied = Set(
                    try connection.query("SELECT name FROM \(schema).schema_migrations").wait().rows.compactMap {
                        $0.makeRandomAccess()[data: "name"].string
                    })
                for migration in migrations where !applied.contains(migration.name) {
                    for statement in Self.statements(Self.translate(ddl: migration.sql)) { try self.simple(connection, statement) }
                    _ = try connection.query("INSERT INTO \(schema).schema_migrations VALUES ($1)", [PostgresData(string: migration.name)]).wait()
                }
                try self.simple(connection, "COMMIT")
                self.give(connection)
            } catch {
                _ = try? connection.close().wait()
                throw Self.describe(error)
            }
        }
    }

    /// LISTEN on a connection of its own, reconnecting after a second when it breaks.
    public func watchAnnouncements(_ onChange: @escaping @Sendable ([String]?) -> Void) -> Task<Void, Never>? {
        Task { [schema, logger] in
            while !Task.isCancelled {
                do {
                    let connection = try await self.threads.runIfActive { try self.connect() }
                    defer { Task { try? await connection.close() } }
                    try await withTaskCancellationHandler {
                        try await connection.listen(on: schema) { notifications in
                            onChange(nil)  // anything committed while no one listened
                            for try await notification in notifications {
                                var lines = notification.payload.split(separator: "\n", omittingEmptySubsequences: false)
                                guard lines.first.map(String.init) != self.token else { continue }  // our own commit: woken already
                                lines.removeFirst()
                                onChange(lines == ["*"] ? nil : lines.map(String.init))
                            }
                        }
                    } onCancel: {
                        Task { try? await connection.close() }
                    }
                } catch {
                    if Task.isCancelled { return }
                    logger.warning(
                        "listening for other processes' commits failed; retrying",
                        metadata: ["schema": "\(schema)", "error": "\(Self.describe(error))"])
                }
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }

    public func tryLead(_ name: String) async throws -> (any SQLLease)? {
        let key = PostgresData(string: "\(schema).\(name)")
        let kept = probe.withLock { probe in
            defer { probe = nil }
            return probe
        }
        let connection: PostgresConnection
        if let kept, !kept.isClosed { connection = kept } else { connection = try await threads.runIfActive { try self.connect() } }
        do {
            // Before the request: the server's idle count starts after it answers, so the lease's
            // first confirmation is never later than the server's.
            let asked = ContinuousClock.now
            let row = try await connection.query("SELECT pg_try_advisory_lock(hashtext($1)) AS held", [key]).get().rows.first
            if row?.makeRandomAccess()[data: "held"].bool == true {
                // The lease's session ends on the server once it is idle for leaseTimeout: a frozen or
                // cut-off leader loses its lock there, whatever the kernel says about the socket.
                let ms = Self.leaseTimeout.components.seconds * 1_000
                _ = try await connection.query(PostgresQuery(unsafeSQL: "SET idle_session_timeout = \(ms)"), logger: logger).get()
                return Lease(connection: connection, confirmedAt: asked, logger: logger)
            }
            // Not ours: the connection asks again next time.
            let other = probe.withLock { probe in
                defer { probe = connection }
                return probe
            }
            if let other { closeInBackground(other) }
            return nil
        } catch {
            try? await connection.close()
            throw Self.describe(error)
        }
    }

    /// A transaction id of its own, assigned now and rolled back (an abort is not flushed to disk).
    public func newTransactionNumber() async throws -> UInt64? {
        do {
            try await threads.runIfActive {
                try self.transaction(["BEGIN"], retrying: false) { db in
                    guard let row = try db.rows("SELECT pg_current_xact_id()::text AS xid", []).first, let xid = UInt64(try row["xid"] as String)
                    else { throw SQLError("pg_current_xact_id() gave no id") }
                    throw Assigned(xid: xid)  // the way to roll back
                }
            }
            throw SQLError("pg_current_xact_id() gave no id")
        } catch let assigned as Assigned {
            return assigned.xid
        }
    }

    private struct Assigned: Error { let xid: UInt64 }

    /// A store dropped without `close()` (a failure on the way up) still closes its connections:
    /// PostgresNIO asserts that none is dropped open.
    deinit {
        for connection in idle.withLock({ $0 }) { closeInBackground(connection) }
        if let connection = probe.withLock({ $0 }) { closeInBackground(connection) }
        threads.shutdownGracefully { _ in }
    }

    public func close() async {
        for connection in idle.withLock({ connections in
            defer { connections = [] }; return connections
        }) {
            try? await connection.close()
        }
        if let connection = probe.withLock({ probe in
            defer { probe = nil }; return probe
        }) {
            try? await connection.close()
        }
        try? await threads.shutdownGracefully()
    }

    /// Leadership is a session lock: it ends with its connection, at once when the process
    /// dies, and `leaseTimeout` after the last heartbeat when it is frozen or cut off (the
    /// server ends the idle session). The holder counts from when it sent the heartbeat the
    /// server answered, which is before the server starts its own count, and gives up a second
    /// early: by the time a successor can hold the lock, `isHeld` is false here.
    final class Lease: SQLLease {
        let connection: PostgresConnection
        /// When the last heartbeat the server answered was sent.
        final class Confirmed: Sendable {
            let instant: Mutex<ContinuousClock.Instant>
            init(_ instant: ContinuousClock.Instant) { self.instant = Mutex(instant) }
        }
        private let confirmed: Confirmed
        private let heartbeat: Task<Void, Never>?
        static let interval: Duration = .seconds(1)
        static let margin: Duration = .seconds(1)

        init(connection: PostgresConnection, confirmedAt: ContinuousClock.Instant, logger: Logger) {
            self.connection = connection
            let confirmed = Confirmed(confirmedAt)
            self.confirmed = confirmed
            heartbeat = Task {
                while !Task.isCancelled {
                    try? await Task.sleep(for: Self.interval)
                    let sent = ContinuousClock.now
                    guard (try? await connection.query("SELECT 1", logger: logger).get()) != nil else { return }
                    confirmed.instant.withLock { $0 = max($0, sent) }
                }
            }
        }

        var isHeld: Bool {
            !connection.isClosed && ContinuousClock.now < confirmed.instant.withLock { $0 } + PostgresStore.leaseTimeout - Self.margin
        }

        func release() async {
            heartbeat?.cancel()
            try? await connection.close()
        }

        /// A lease dropped without `release()` ends too.
        deinit {
            heartbeat?.cancel()
            closeInBackground(connection)
        }
    }

    // MARK: - Transactions, on the store's threads

    private func transaction<T>(_ begin: [String], retrying: Bool, _ body: (any SQLDatabase) throws -> T) throws -> T {
        var attempt = 0
        while true {
            attempt += 1
            let connection = try take()
            let session = Session(store: self, connection: connection)
            var committing = false
            // Not waited for: the body's first statement follows it in the same round trip. It
            // is checked before COMMIT (it only fails with the connection, and then so does all after it).
            session.sendAhead(begin.map { connection.query($0) })
            do {
                let value = try body(session)
                try session.flush()
                committing = true
                _ = try connection.query("COMMIT").wait()
                give(connection)
                return value
            } catch {
                _ = try? session.flush()  // what the body sent before it threw, so ROLLBACK follows it
                if committing, Self.isConnectionFailure(error) {
                    _ = try? connection.close().wait()
                    throw SQLError("the connection broke during COMMIT: \(Self.describe(error))", transient: true, mayHaveCommitted: true)
                }
                if connection.isClosed || Self.isConnectionFailure(error) {
                    _ = try? connection.close().wait()
                } else if (try? connection.query("ROLLBACK").wait()) != nil {
                    give(connection)
                } else {
                    _ = try? connection.close().wait()
                }
                guard retrying, Self.isConflict(error) else { throw Self.describe(error) }
                guard attempt < Self.maxAttempts else {
                    // Still meeting other writers: not a broken database. The caller may try later.
                    throw SQLError("gave up after \(attempt) attempts meeting concurrent writes: \(Self.describe(error))", transient: true)
                }
                conflictRetried()
                // Jittered, growing a little: the writers that met each other must not meet again.
                Thread.sleep(forTimeInterval: Double.random(in: 0.001...0.002 * Double(min(attempt, 20))))
            }
        }
    }

    private func take() throws -> PostgresConnection {
        while let connection = idle.withLock({ $0.popLast() }) {
            if !connection.isClosed { return connection }
        }
        return try connect()
    }

    private func give(_ connection: PostgresConnection) {
        idle.withLock { $0.append(connection) }
    }

    private func tls() throws -> PostgresConnection.Configuration.TLS {
        do { return try connectionTLS.get() } catch { throw SQLError("cannot connect to \(url): \(error)", transient: false) }
    }

    private func connect() throws -> PostgresConnection {
        var configuration = PostgresConnection.Configuration(
            host: url.host, port: url.port, username: url.user, password: url.password, database: url.database, tls: try tls())
        configuration.options.additionalStartupParameters = [
            // The process id tells an operator (and the replica tests) which process holds what.
            ("search_path", quoted(schema)), ("application_name", "commerce-\(getpid())"),
            // A peer that dies without a FIN (a node lost) is noticed in about 25 s, not in the
            // kernel's 2 hours: its leadership and locks go with its sessions.
            ("tcp_keepalives_idle", "10"), ("tcp_keepalives_interval", "5"), ("tcp_keepalives_count", "3"),
            // A process frozen inside a transaction holds its row locks for seconds, not for ever.
            // No transaction waits for anything outside the database, so none idles that long.
            ("idle_in_transaction_session_timeout", "5000"),
        ]
        do {
            return try PostgresConnection.connect(
                on: MultiThreadedEventLoopGroup.singleton.any(), configuration: configuration,
                id: nextID.add(1, ordering: .relaxed).newValue, logger: logger
            ).wait()
        } catch {
            // A certificate refused by a TLS check will not mend by waiting either: fail closed.
            if let failure = url.tlsFailure(error) { throw SQLError("cannot connect to \(url): \(failure)", transient: false) }
            // A refused login or a database that does not exist will not mend by waiting.
            let state = Self.sqlState(error) ?? ""
            throw SQLError("cannot connect to \(url): \(Self.describe(error))", transient: !(state.hasPrefix("28") || state == "3D000"))
        }
    }

    private func simple(_ connection: PostgresConnection, _ sql: String) throws {
        _ = try connection.simpleQuery(sql).wait()
    }

    /// `?` placeholders to `$1, $2, ...`, outside quotes; cached per statement text.
    func postgresSQL(_ sql: String) -> String {
        if let done = statements.withLock({ $0[sql] }) { return done }
        let done = Self.numberPlaceholders(sql)
        statements.withLock { $0[sql] = done }
        return done
    }

    static func numberPlaceholders(_ sql: String) -> String {
        var out = ""
        out.reserveCapacity(sql.utf8.count + 8)
        var quote: Character?
        var n = 0
        for c in sql {
            if let q = quote {
                if c == q { quote = nil }
                out.append(c)
            } else if c == "'" || c == "\"" {
                quote = c
                out.append(c)
            } else if c == "?" {
                n += 1
                out += "$\(n)"
            } else {
                out.append(c)
            }
        }
        return out
    }

    /// A script's statements, without `--` comments: a prepared statement takes one.
    static func statements(_ script: String) -> [String] {
        var statements: [String] = [], current = ""
        var quote: Character?
        var comment = false
        var previous: Character = " "
        for c in script {
            if comment {
                if c == "\n" { comment = false }
            } else if let q = quote {
                if c == q { quote = nil }
                current.append(c)
            } else if c == "-", previous == "-" {
                current.removeLast()
                comment = true
            } else if c == "'" || c == "\"" {
                quote = c
                current.append(c)
            } else if c == ";" {
                statements.append(current)
                current = ""
            } else {
                current.append(c)
            }
            previous = comment ? " " : c
        }
        statements.append(current)
        return statements.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.filter { !$0.isEmpty }
    }

    /// SQLite's DDL as PostgreSQL's: 64-bit integers, identity keys, bytea; no WITHOUT ROWID.
    static func translate(ddl: String) -> String {
        ddl.replacingOccurrences(of: "INTEGER PRIMARY KEY AUTOINCREMENT", with: "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY")
            .replacingOccurrences(of: "INTEGER", with: "BIGINT")
            .replacingOccurrences(of: "BLOB", with: "BYTEA")
            .replacingOccurrences(of: " WITHOUT ROWID", with: "")
    }

    // MARK: - Errors

    /// The server's fields of an error: the legacy EventLoopFuture API reports them as
    /// `PostgresError.server`, the async one as `PSQLError`.
    static func serverField(_ error: any Error, _ field: PostgresMessage.Error.Field) -> String? {
        if case .server(let message)? = error as? PostgresError { return message.fields[field] }
        guard let info = (error as? PSQLError)?.serverInfo else { return nil }
        switch field {
        case .sqlState: return info[.sqlState]
        case .message: return info[.message]
        case .detail: return info[.detail]
        default: return nil
        }
    }

    static func sqlState(_ error: any Error) -> String? { serverField(error, .sqlState) }

    /// A serialization failure or a deadlock: the transaction is run again. A unique key
    /// inserted first by another writer is not: it is the caller's to handle
    /// (`SQLError.isUniqueViolation`).
    static func isConflict(_ error: any Error) -> Bool {
        ["40001", "40P01"].contains(sqlState(error) ?? "")
    }

    /// The connection is gone or the server is going away: another connection, later, may work.
    static func isConnectionFailure(_ error: any Error) -> Bool {
        if let error = error as? SQLError { return error.isTransient }
        // 25P03 and 57P05: the server ended a session idle too long (a process that stalled).
        if let state = sqlState(error) { return ["57P01", "57P02", "57P03", "57P05", "25P03", "08000", "08003", "08006"].contains(state) }
        if let error = error as? PostgresError {
            switch error {
            case .server: return false
            // A login the server will never accept is not worth waiting for.
            case .protocol(let message) where message.contains("auth"): return false
            default: return true
            }
        }
        if let error = error as? PSQLError {
            return [.serverClosedConnection, .clientClosedConnection, .connectionError, .uncleanShutdown, .sslUnsupported].contains(error.code)
        }
        return error is ChannelError || error is IOError
    }

    /// The server's message and code (it names tables and constraints, never bound values);
    /// PSQLError's own description hides them.
    static func describe(_ error: any Error) -> any Error {
        guard error is PSQLError || error is PostgresError || error is ChannelError || error is IOError else { return error }
        if let state = sqlState(error) {
            let detail = serverField(error, .detail).map { " (\($0))" } ?? ""
            return SQLError(
                "PostgreSQL \(state): \(serverField(error, .message) ?? "no message")\(detail)", transient: isConnectionFailure(error),
                uniqueViolation: state == "23505")
        }
        // PSQLError's description hides everything; its code and underlying error say what happened.
        let what = (error as? PSQLError).map { "\($0.code)\($0.underlying.map { ": \($0)" } ?? "")" } ?? "\(error)"
        return SQLError("PostgreSQL connection failed: \(what)", transient: isConnectionFailure(error))
    }
}

/// Closes without waiting; the connection is kept until it is closed (PostgresNIO asserts
/// that none is dropped open).
func closeInBackground(_ connection: PostgresConnection) {
    let closing: EventLoopFuture<Void> = connection.close()
    closing.whenComplete { _ in withExtendedLifetime(connection) {} }
}

func quoted(_ identifier: String) -> String { "\"" + identifier.replacingOccurrences(of: "\"", with: "\"\"") + "\"" }

/// One transaction's connection, used from one store thread.
final class Session: SQLDatabase {
    let store: PostgresStore
    let connection: PostgresConnection
    /// Statements this session may run (nil: any number); one more throws `SecondStatement`.
    private let statementLimit: Int?
    private var statements = 0

    /// A read outside a transaction asked for a second statement: it must run in one.
    struct SecondStatement: Error {}

    init(store: PostgresStore, connection: PostgresConnection, statementLimit: Int? = nil) {
        self.store = store
        self.connection = connection
        self.statementLimit = statementLimit
    }

    private func count() throws {
        statements += 1
        if let statementLimit, statements > statementLimit { throw SecondStatement() }
    }

    /// Statements sent and not waited for, in order: a thread waiting for each answer cost two
    /// thread wake-ups and a round trip per statement, most of a transaction's time and CPU.
    private var pending: [EventLoopFuture<PostgresQueryResult>] = []

    /// Statements sent by the store itself (BEGIN), checked with the body's.
    func sendAhead(_ statements: [EventLoopFuture<PostgresQueryResult>]) { pending += statements }

    func execute(_ sql: String, _ arguments: [SQLValue]) throws {
        try count()
        pending.append(connection.query(store.postgresSQL(sql), arguments.map(Self.data)))
    }

    /// Waits for every statement sent; throws the first one's error (after the others ended:
    /// the connection is then idle, in a failed transaction).
    func flush() throws {
        let sent = pending
        pending = []
        var failure: (any Error)?
        for statement in sent {
            do { _ = try statement.wait() } catch { failure = failure ?? error }
        }
        if let failure { throw failure }
    }

    func rows(_ sql: String, _ arguments: [SQLValue]) throws -> [SQLRow] {
        try count()
        let result = connection.query(store.postgresSQL(sql), arguments.map(Self.data))
        try flush()
        let answer = try result.wait()
        return try Self.rows(answer)
    }

    static func rows(_ result: PostgresQueryResult) throws -> [SQLRow] {
        return try result.rows.map { row in
            var columns: [String] = [], values: [SQLValue] = []
            for cell in row {
                columns.append(cell.columnName)
                values.append(try Self.value(cell))
            }
            return SQLRow(columns: columns, values: values)
        }
    }

    /// NOTIFY on the schema's channel, delivered at commit: the store's token, then a subject per
    /// line. PostgreSQL caps a payload at 8000 bytes, so a longer list is sent as "*" (everything
    /// may have changed).
    func announce(_ subjects: [String]) throws {
        try count()
        var payload = ([store.token] + subjects).joined(separator: "\n")
        if payload.utf8.count > 7_000 { payload = store.token + "\n*" }
        pending.append(connection.query("SELECT pg_notify($1, $2)", [PostgresData(string: store.schema), PostgresData(string: payload)]))
    }

    /// Transaction-level advisory locks on 64-bit hashes of the schema's keys, in ascending
    /// order (`unnest` keeps the array's order), in one statement.
    func lock(_ keys: [String]) throws {
        guard !keys.isEmpty else { return }
        try count()
        let hashes = Set(keys.map { Self.fnv1a("\(store.schema)/\($0)") }).sorted()
        let array = "{" + hashes.map(String.init).joined(separator: ",") + "}"
        pending.append(connection.query("SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) AS k", [PostgresData(string: array)]))
    }

    /// The snapshot's xmin: no transaction below it is running. (Its xmax is not a bound on
    /// running transactions since PostgreSQL 14, which is why `newTransactionNumber` exists.)
    func oldestRunningTransaction() throws -> UInt64? {
        let row = try rows("SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS oldest", []).first
        guard let row, let oldest = UInt64(try row["oldest"] as String) else { throw SQLError("pg_current_snapshot() gave no xmin") }
        return oldest
    }

    /// FNV-1a: stable across processes and builds (Swift's `Hasher` is seeded per process).
    static func fnv1a(_ text: String) -> Int64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x100_0000_01b3
        }
        return Int64(bitPattern: hash)
    }

    static func data(_ value: SQLValue) -> PostgresData {
        switch value {
        case .null: .null
        case .integer(let i): PostgresData(int64: i)
        case .text(let s): PostgresData(string: s)
        case .blob(let b): PostgresData(bytes: b)
        }
    }

    static func value(_ cell: PostgresCell) throws -> SQLValue {
        guard let bytes = cell.bytes else { return .null }
        switch cell.dataType {
        case .int2, .int4, .int8: return .integer(try cell.decode(Int64.self))
        case .bool: return .integer(try cell.decode(Bool.self) ? 1 : 0)
        case .bytea: return .blob(Data(bytes.readableBytesView))
        default:
            do { return .text(try cell.decode(String.self)) } catch {
                throw SQLError("column '\(cell.columnName)' has PostgreSQL type \(cell.dataType), which the services do not use")
            }
        }
    }
}
