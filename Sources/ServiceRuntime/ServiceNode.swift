import Events
import Foundation
import GRDB
import Logging

/// One domain service's local state: its SQLite database (with the runtime's outbox, inbox
/// and rejected-event tables beside the service's own), its fault plan, and the wake-up
/// line to its outbox relay.
public final class ServiceNode: Sendable {
    public let service: any DomainService
    public let database: DatabasePool
    public let faults: FaultPlan
    public var name: String { service.name }
    public var source: String { "/commerce/\(service.name)" }
    /// Prepended to every topic this node reads and writes; empty in production. Tests give
    /// each scenario its own topics with it.
    public let topicPrefix: String
    /// Event types after whose commit the process exits at once, before publishing: the
    /// crash window the outbox exists for, reachable from tests.
    let crashAfterCommitOf: Set<String>
    /// The Idempotency-Keys this node shares with the other services of its process.
    public let keySpace: KeySpace
    let relayWakeups: AsyncStream<Void>
    private let wakeRelay: AsyncStream<Void>.Continuation
    private let logger: Logger

    public init(
        service: any DomainService, directory: String, faults: FaultPlan = FaultPlan(), topicPrefix: String = "",
        crashAfterCommitOf: Set<String> = [], keySpace: KeySpace = KeySpace(), logger: Logger = Logger(label: "commerce")
    ) throws {
        self.service = service
        self.topicPrefix = topicPrefix
        self.faults = faults
        self.crashAfterCommitOf = crashAfterCommitOf
        self.keySpace = keySpace
        self.logger = logger
        (relayWakeups, wakeRelay) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var configuration = Configuration()
        // WAL with synchronous=NORMAL survives a process crash; only an OS crash can lose the last commits.
        configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = NORMAL") }
        configuration.busyMode = .timeout(10)
        database = try DatabasePool(path: "\(directory)/\(service.name).sqlite", configuration: configuration)
        var migrator = DatabaseMigrator()
        Self.registerRuntimeTables(&migrator)
        service.migrate(&migrator)
        try migrator.migrate(database)
        keySpace.join(service.name, database)
    }

    /// Runs `body` in one local transaction and writes the events it returns to the outbox in
    /// that same transaction: a rolled-back change publishes nothing, a committed one is
    /// published even if the process dies right after.
    public func transaction<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> (T, [CommerceEvent])) async throws -> T {
        let (value, types) = try await database.write { db in
            let (value, events) = try body(db)
            try Outbox.append(events, prefix: self.topicPrefix, db)
            return (value, events.map(\.type))
        }
        committed(types)
        return value
    }

    public func read<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await database.read(body)
    }

    /// A new event from this service.
    public func event(_ type: String, saga: String, subject: String, _ data: CommerceEventData) -> CommerceEvent {
        CommerceEvent(
            source: source, type: type, subject: subject,
            timeMs: Int64(Date().timeIntervalSince1970 * 1_000), sagaId: saga, data: data)
    }

    /// Called after every commit that wrote outbox rows.
    func committed(_ types: [String]) {
        guard !types.isEmpty else { return }
        if let type = types.first(where: crashAfterCommitOf.contains) {
            FileHandle.standardError.write(Data("commerce: crashing on purpose after committing \(type), before publishing it\n".utf8))
            _exit(70)
        }
        wakeRelay.yield()
    }

    func wakeRelayPeriodically() { wakeRelay.yield() }
    func finishRelay() { wakeRelay.finish() }

    private static func registerRuntimeTables(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("runtime-v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, key TEXT NOT NULL,
                                         value BLOB NOT NULL, event_id TEXT NOT NULL, type TEXT NOT NULL);
                    CREATE TABLE inbox (event_id TEXT PRIMARY KEY, type TEXT NOT NULL, processed_at INTEGER NOT NULL) WITHOUT ROWID;
                    CREATE TABLE rejected_events (topic TEXT NOT NULL, partition INTEGER NOT NULL, "offset" INTEGER NOT NULL,
                                                  key TEXT, value BLOB NOT NULL, error TEXT NOT NULL, rejected_at INTEGER NOT NULL,
                                                  PRIMARY KEY (topic, partition, "offset"));
                    CREATE TABLE idempotency (key TEXT PRIMARY KEY, result BLOB NOT NULL) WITHOUT ROWID;
                    """)
        }
        // v1 kept answers without what they answered, so a key could not be checked against its
        // request; those rows cannot be bound after the fact and are dropped.
        migrator.registerMigration("runtime-v2") { db in
            try db.execute(
                sql: """
                    DROP TABLE idempotency;
                    CREATE TABLE idempotency_keys (key TEXT PRIMARY KEY, request TEXT NOT NULL, fingerprint BLOB NOT NULL,
                                                   status INTEGER NOT NULL, answer BLOB NOT NULL) WITHOUT ROWID;
                    """)
        }
    }
}

enum Outbox {
    static func append(_ events: [CommerceEvent], prefix: String, _ db: Database) throws {
        for event in events {
            try db.execute(
                sql: "INSERT INTO outbox (topic, key, value, event_id, type) VALUES (?, ?, ?, ?, ?)",
                arguments: [prefix + event.topic, event.key, Data(try event.encoded()), event.id, event.type])
        }
    }
}
