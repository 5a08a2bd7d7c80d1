import Foundation
import Logging
import PostgresNIO
import SQLStore
import SQLiteStore
import Testing

@testable import PostgresStore

let postgresURL = ProcessInfo.processInfo.environment["POSTGRES_URL"] ?? "postgres://commerce@127.0.0.1:21432/postgres"

/// Both stores, on the same statements: what domain code may rely on whichever holds it.
@Suite("SQL stores")
struct SQLStoreTests {
    enum Kind: String, CaseIterable, CustomTestStringConvertible {
        case sqlite, postgres
        var testDescription: String { rawValue }
    }

    static let migrations = [
        SQLMigration(
            "t-v1",
            """
            CREATE TABLE things (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, size INTEGER, body BLOB);
            -- a comment; with a semicolon
            CREATE TABLE tags (thing_id INTEGER NOT NULL, tag TEXT NOT NULL, PRIMARY KEY (thing_id, tag)) WITHOUT ROWID;
            """)
    ]

    /// A fresh store of `kind`, migrated; `done` drops what it made.
    static func store(_ kind: Kind) async throws -> (any SQLStore, @Sendable () async -> Void) {
        let name = "s\(UUID().uuidString.prefix(8).lowercased())"
        switch kind {
        case .sqlite:
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("\(name).sqlite").path
            let store = try SQLiteStore(path: path)
            try await store.migrate(migrations)
            return (
                store,
                {
                    await store.close(); try? FileManager.default.removeItem(atPath: path)
                }
            )
        case .postgres:
            let url = try PostgresURL(postgresURL)
            let store = PostgresStore(url: url, schema: "\(name)_service", connections: 2, logger: Logger(label: "test"))
            try await store.migrate(migrations)
            try await store.migrate(migrations)  // a second time applies nothing
            return (
                store,
                {
                    _ = try? await store.write { db in try db.execute("DROP SCHEMA \"\(name)_service\" CASCADE") }
                    await store.close()
                }
            )
        }
    }

    @Test(arguments: Kind.allCases) func valuesGoInAndComeBackTheSame(kind: Kind) async throws {
        let (store, done) = try await Self.store(kind)
        let body = Data([0, 1, 2, 255])
        let id = try await store.write { db in
            try db.insert("INSERT INTO things (name, size, body) VALUES (?, ?, ?)", "a 'quoted' ?", Int64.max, body)
        }
        let second = try await store.write { db in try db.insert("INSERT INTO things (name) VALUES (?)", "b") }
        #expect(second == id + 1)
        let row = try #require(try await store.read { db in try db.row("SELECT * FROM things WHERE id = ?", id) })
        #expect(try row["name"] as String == "a 'quoted' ?")
        #expect(try row["size"] as Int64 == .max)
        #expect(try row["body"] as Data == body)
        let empty = try #require(try await store.read { db in try db.row("SELECT size, body FROM things WHERE id = ?", second) })
        #expect(try empty["size"] as Int64? == nil)
        #expect(try empty["body"] as Data? == nil)
        #expect(throws: SQLError.self) { try empty["size"] as Int64 }
        #expect(throws: SQLError.self) { try empty["nothing"] as Int64? }
        #expect(try await store.read { db in try db.exists("SELECT 1 FROM things WHERE name = ?", "b") })
        #expect(try await store.read { db in try db.value(Int64.self, "SELECT COUNT(*) FROM things") } == 2)
        await done()
    }

    @Test(arguments: Kind.allCases) func aSavepointUndoesItsPartOnlyAndAThrowUndoesTheTransaction(kind: Kind) async throws {
        let (store, done) = try await Self.store(kind)
        struct Refused: Error {}
        try await store.write { db in
            try db.execute("INSERT INTO things (name) VALUES ('kept')")
            #expect(throws: Refused.self) {
                try db.savepoint {
                    try db.execute("INSERT INTO things (name) VALUES ('undone')")
                    throw Refused()
                }
            }
        }
        await #expect(throws: Refused.self) {
            try await store.write { db in
                try db.execute("INSERT INTO things (name) VALUES ('rolled back')")
                throw Refused()
            }
        }
        let names = try await store.read { db in try db.rows("SELECT name FROM things ORDER BY id").map { try $0["name"] as String } }
        #expect(names == ["kept"])
        let changed = try await store.write { db in
            try db.execute("INSERT INTO tags VALUES (1, 'x') ON CONFLICT DO NOTHING")
            return try db.rows("INSERT INTO tags VALUES (1, 'x') ON CONFLICT DO NOTHING RETURNING tag").count
        }
        #expect(changed == 0, "a conflicting row is skipped, and returns nothing")
        // A statement sent without waiting fails the transaction at the next wait, which rolls it back.
        await #expect(throws: (any Error).self) {
            try await store.write { db in
                try db.execute("INSERT INTO tags VALUES (2, 'y')")
                try db.execute("INSERT INTO tags VALUES (2, 'y')")  // the same key: refused
                return try db.rows("SELECT tag FROM tags").count
            }
        }
        let tags = try await store.read { db in try db.rows("SELECT tag FROM tags WHERE thing_id = 2").count }
        #expect(tags == 0, "the failed transaction left nothing")
        await done()
    }

    /// One process leads a name at a time; the lease ends with its holder.
    @Test func onPostgreSQLOneProcessLeadsAtATime() async throws {
        let (first, done) = try await Self.store(.postgres)
        let url = (first as! PostgresStore).url, schema = (first as! PostgresStore).schema
        let second = PostgresStore(url: url, schema: schema, connections: 1, logger: Logger(label: "test"))
        let lease = try #require(try await first.tryLead("relay"))
        #expect(try await second.tryLead("relay") == nil)
        #expect(try await second.tryLead("another") != nil)
        await lease.release()
        let taken = try #require(try await second.tryLead("relay"))
        #expect(taken.isHeld)
        await taken.release()
        await second.close()
        await done()
    }

    /// What one process's commit announces reaches the other processes (not itself), and only
    /// once it commits.
    @Test func onPostgreSQLACommitsAnnouncementReachesTheOtherProcesses() async throws {
        let (first, done) = try await Self.store(.postgres)
        let url = (first as! PostgresStore).url, schema = (first as! PostgresStore).schema
        let second = PostgresStore(url: url, schema: schema, connections: 1, logger: Logger(label: "test"))
        let heard = Heard(), heardByFirst = Heard()
        let watching = try #require(second.watchAnnouncements { heard.add($0) })
        let own = try #require(first.watchAnnouncements { heardByFirst.add($0) })
        #expect(try await Self.until { heard.lists.count >= 1 }, "the watcher says it may have missed something when it starts")
        let start = heard.lists.count
        struct Refused: Error {}
        await #expect(throws: Refused.self) {
            try await first.write { db in
                try db.announce(["order/1"])
                throw Refused()
            }
        }
        try await first.write { db in try db.announce(["order/7", "payment/2"]) }
        #expect(try await Self.until { heard.lists.count > start }, "announced")
        #expect(Array(heard.lists[start...]) == [["order/7", "payment/2"]], "the rolled-back announcement never came: \(heard.lists)")
        #expect(heardByFirst.lists.allSatisfy { $0 == nil }, "a process is not told of its own commits: \(heardByFirst.lists)")
        watching.cancel()
        own.cancel()
        await second.close()
        await done()
    }

    /// Keys are taken in one order whatever order they are named in: with the lower key held by
    /// another session, a transaction asking for both waits for the lower one holding neither
    /// (taking them as named, it would hold the higher one while waiting: half of a deadlock).
    @Test func onPostgreSQLLockedKeysAreTakenInOneOrder() async throws {
        let (store, done) = try await Self.store(.postgres)
        let schema = (store as! PostgresStore).schema
        let names = ["product/1", "product/2"]
        let hashes = names.map { Session.fnv1a("\(schema)/\($0)") }
        let (lower, higher) = hashes[0] < hashes[1] ? (0, 1) : (1, 0)
        // Another session holds the lower key, as a transaction that took it first would.
        let holder = PostgresStore(url: try PostgresURL(postgresURL), schema: "public", connections: 1, logger: Logger(label: "test"))
        let holding = DispatchSemaphore(value: 0), release = DispatchSemaphore(value: 0)
        async let held: Void = holder.write { db in
            _ = try db.rows("SELECT pg_advisory_xact_lock(?)", hashes[lower])
            holding.signal()
            _ = release.wait(timeout: .now() + 4)  // under idle_in_transaction_session_timeout (5 s)
        }
        #expect(await Task.detached { holding.wait(timeout: .now() + 30) }.value == .success, "the holder never took the key")
        // Named higher first: taken in order, the transaction waits for the lower one first.
        async let asking: Void = store.write { db in
            try db.lock([names[higher], names[lower]])
            _ = try db.rows("SELECT 1")
        }
        let observer = PostgresStore(url: try PostgresURL(postgresURL), schema: "public", connections: 1, logger: Logger(label: "test"))
        let key = "((classid::bigint << 32) | objid::bigint)"
        var waitingForLower = false, holdingHigher = true
        for _ in 0..<60 where !waitingForLower {
            try await Task.sleep(for: .milliseconds(50))
            (waitingForLower, holdingHigher) = try await observer.read { db in
                let waiting = try db.rows(
                    "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 1 AND NOT granted AND \(key) = ?", hashes[lower])
                let granted = try db.rows(
                    "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 1 AND granted AND \(key) = ?", hashes[higher])
                return (!waiting.isEmpty, !granted.isEmpty)
            }
        }
        release.signal()
        try await held
        try await asking
        #expect(waitingForLower, "the transaction waited for the lower key")
        #expect(!holdingHigher, "it held the higher key while waiting for the lower one")
        await observer.close()
        await holder.close()
        await done()
    }

    /// What a relay reads at a gap: a row of a transaction still running is numbered below a
    /// `newTransactionNumber` taken after a read that missed it, and the oldest running
    /// transaction passes that number only once the row's transaction has ended.
    @Test func onPostgreSQLATransactionNotEndedHoldsBackTheOldestRunning() async throws {
        let (store, done) = try await Self.store(.postgres)
        let held = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        async let writer: Void = store.write { db in
            try db.execute("INSERT INTO things (name) VALUES ('late')")
            _ = try db.rows("SELECT 1")  // the insert is sent ahead: done once this answers
            held.signal()
            _ = release.wait(timeout: .now() + 30)
        }
        #expect(await Task.detached { held.wait(timeout: .now() + 30) }.value == .success, "the writer never wrote")
        #expect(try await store.read { db in try db.rows("SELECT name FROM things").count } == 0, "not committed yet")
        let next = try #require(try await store.newTransactionNumber())
        let oldest = try #require(try await store.read { db in try db.oldestRunningTransaction() })
        #expect(oldest < next, "the writer is still running")
        release.signal()
        try await writer
        // Eventually, not at once: other tests' transactions on this server hold it back too.
        let passed = try await Self.eventually { try await store.read { db in try db.oldestRunningTransaction() }.map { $0 >= next } ?? false }
        #expect(passed, "every transaction numbered below the earlier number has ended")
        await done()
    }

    static func eventually(_ condition: () async throws -> Bool) async throws -> Bool {
        for _ in 0..<600 where !(try await condition()) { try await Task.sleep(for: .milliseconds(50)) }
        return try await condition()
    }

    static func until(_ condition: () -> Bool) async throws -> Bool {
        for _ in 0..<100 where !condition() { try await Task.sleep(for: .milliseconds(50)) }
        return condition()
    }

    final class Heard: @unchecked Sendable {
        private let lock = NSLock()
        private var stored: [[String]?] = []
        var lists: [[String]?] { lock.withLock { stored } }
        func add(_ list: [String]?) { lock.withLock { stored.append(list) } }
    }

    @Test func placeholdersAreNumberedOutsideQuotesOnly() {
        #expect(
            PostgresStore.numberPlaceholders(#"SELECT '?', "a?b", ? FROM t WHERE x = ? AND y = 'it''s ?'"#)
                == #"SELECT '?', "a?b", $1 FROM t WHERE x = $2 AND y = 'it''s ?'"#)
    }

    @Test func aScriptIsSplitIntoStatementsWithoutComments() {
        let script = "CREATE TABLE a (x TEXT DEFAULT ';');\n-- note; here\nCREATE TABLE b (y INTEGER); -- trailing\n"
        #expect(PostgresStore.statements(script) == ["CREATE TABLE a (x TEXT DEFAULT ';')", "CREATE TABLE b (y INTEGER)"])
        #expect(
            PostgresStore.translate(ddl: "CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, n INTEGER, b BLOB) WITHOUT ROWID")
                == "CREATE TABLE t (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, n BIGINT, b BYTEA)")
    }

    @Test func aDatabaseURLIsReadOrRefusedInOneLineWithoutItsPassword() throws {
        let url = try PostgresURL("postgres://app:s%3Acret@db.example:6432/shop")
        #expect(url.user == "app" && url.password == "s:cret" && url.host == "db.example" && url.port == 6432 && url.database == "shop")
        #expect(url.description == "postgres://app:***@db.example:6432/shop")
        #expect(try PostgresURL("postgresql://app@db/shop?sslmode=disable").port == 5432)
        #expect(try PostgresURL("postgres://app@db/shop?sslmode=require").sslMode == .require)
        let full = try PostgresURL("postgres://app@db/shop?sslmode=verify-full&sslrootcert=/etc/ca.pem")
        #expect(
            full.sslMode == .verifyFull && full.sslRootCert == "/etc/ca.pem" && full.description == "postgres://app@db:5432/shop?sslmode=verify-full")
        let bads = [
            "mysql://a@b/c", "postgres://b/c", "postgres://a@b", "postgres://a:pw@b:0/c",
            // may fall back to plaintext; verifying needs the CA
            "postgres://a@b/c?sslmode=prefer", "postgres://a@b/c?sslmode=allow", "postgres://a@b/c?sslmode=verify-ca",
            "postgres://a@b/c?sslmode=verify-full&sslrootcert=/ca&sslmode=disable", "postgres://a@b/c?sslmode=require&sslrootcert=",
        ]
        for bad in bads {
            #expect(throws: PostgresURL.URLError.self, "\(bad)") { try PostgresURL(bad) }
        }
        #expect(try PostgresURL("postgres://a:p%2541@b/c").password == "p%41", "decoded once")
        let refusal = #expect(throws: PostgresURL.URLError.self) { try PostgresURL("postgres://a:hunter2@b/c?target=x") }
        #expect(refusal.map { !"\($0)".contains("hunter2") } == true, "\(String(describing: refusal))")
    }
}
