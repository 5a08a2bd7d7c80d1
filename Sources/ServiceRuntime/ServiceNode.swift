import Events
import Foundation
import Logging
import SQLStore
import Telemetry

/// One domain service's state: its database (with the runtime's outbox, inbox and
/// rejected-event tables beside the service's own), its fault plan, and the wake-up line to
/// its outbox relay.
public final class ServiceNode: Sendable {
    public let service: any DomainService
    public let database: any SQLStore
    public let faults: FaultPlan
    public var name: String { service.name }
    public var source: String { "/commerce/\(service.name)" }
    /// Prepended to every topic this node reads and writes; empty in production. Tests give
    /// each scenario its own topics with it.
    public let topicPrefix: String
    /// The points where tests interrupt this service; none in production.
    let testFaults: ServiceFaults
    /// The Idempotency-Keys this node shares with the other services of its process.
    public let keySpace: KeySpace
    /// Requests waiting for a change of one of this node's resources (long polls); shared,
    /// with its bound, by the services of a process.
    public let waiters: ChangeWaiters
    /// This service's series in the process's Prometheus registry.
    public let metrics: ServiceMetrics
    let relayWakeups: AsyncStream<Void>
    /// Listens to the commits of the other processes sharing the store; nil when there are none.
    private let watcher: Task<Void, Never>?
    private let wakeRelay: AsyncStream<Void>.Continuation
    private let logger: Logger

    /// Opens the service's tables in `store`, migrating them first.
    public init(
        service: any DomainService, store: any SQLStore, faults: FaultPlan = FaultPlan(), topicPrefix: String = "",
        testFaults: ServiceFaults = ServiceFaults(), keySpace: KeySpace = KeySpace(),
        waiters: ChangeWaiters = ChangeWaiters(), metrics: ServiceMetrics? = nil,
        logger: Logger = Logger(label: "commerce")
    ) async throws {
        self.service = service
        self.topicPrefix = topicPrefix
        self.faults = faults
        self.testFaults = testFaults
        self.keySpace = keySpace
        self.waiters = waiters
        self.metrics = metrics ?? ServiceMetrics(service: service.name)
        self.logger = logger
        (relayWakeups, wakeRelay) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        database = store
        try await store.migrate(Self.runtimeMigrations + service.migrations)
        keySpace.join(service.name, store)
        // Other processes' commits wake this one's relay (the leader may be here) and long polls.
        watcher = store.watchAnnouncements { [wakeRelay, waiters, name = service.name] subjects in
            wakeRelay.yield()
            guard waiters.count > 0 else { return }
            if let subjects { waiters.notify(subjects.lazy.map { "\(name) \($0)" }) } else { waiters.notifyAll() }
        }
    }

    /// Runs `body` in one local transaction and writes the events it returns to the outbox in
    /// that same transaction: a rolled-back change publishes nothing, a committed one is
    /// published even if the process dies right after.
    /// The events join the trace of the task's context (`TraceParent.current`, the HTTP request's).
    public func transaction<T: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) throws -> (T, [CommerceEvent])) async throws -> T {
        let trace = TraceParent.current
        let pending = Telemetry.isExporting ? PendingSpans() : nil
        let (value, events): (T, [CommerceEvent])
        do {
            (value, events) = try await database.write { db in
                pending?.beginAttempt()
                let (value, produced) = try body(db)
                let events = produced.map { $0.hop(of: trace, topicPrefix: self.topicPrefix, pending: pending) }
                try Outbox.append(events, prefix: self.topicPrefix, db)
                return (value, events)
            }
        } catch {
            pending?.rollBack()
            throw error
        }
        pending?.commit()
        committed(events)
        return value
    }

    public func read<T: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) throws -> T) async throws -> T {
        try await database.read(body)
    }

    /// A long poll's read: `body` again each time a commit of this node emits an event whose
    /// subject is `subject` ("order/12"), until `done` holds for what it read or `timeout` passes;
    /// returns the last read. Waiting holds no thread and no database connection. On a store
    /// shared with other processes their commits wake it too (`SQLStore.watchAnnouncements`,
    /// which wakes every waiter after it reconnects): it reads only when something changed, never
    /// on a timer, so waiters cost the database nothing while nothing happens.
    /// Throws `ChangeWaiters.LimitReached` when the process already has its limit of waiters.
    public func readAwaitingChange<T: Sendable>(
        of subject: String, timeout: Duration,
        _ body: @escaping @Sendable (any SQLDatabase) throws -> T,
        until done: (T) -> Bool
    ) async throws -> T {
        let deadline = ContinuousClock.now + timeout
        let key = waitKey(subject)
        var value = try await database.read(body)
        while !done(value), ContinuousClock.now < deadline {
            // Registered before the read: a commit after that read wakes this ticket.
            let ticket = try waiters.register(key)
            value = try await database.read(body)
            if done(value) {
                waiters.cancel(ticket)
                break
            }
            switch await waiters.wait(ticket, until: deadline) {
            case .changed: value = try await database.read(body)  // answered as it is if the deadline has passed meanwhile
            case .timedOut: return try await database.read(body)
            case .cancelled: throw CancellationError()
            }
        }
        return value
    }

    private func waitKey(_ subject: String) -> String { "\(service.name) \(subject)" }

    /// A new event from this service.
    public func event(_ type: String, saga: String, subject: String, _ data: CommerceEventData) -> CommerceEvent {
        CommerceEvent(
            source: source, type: type, subject: subject,
            timeMs: Timestamp.nowMs(), sagaId: saga, data: data)
    }

    /// Called after every commit that wrote outbox rows: wakes the relay, and the long polls
    /// waiting on the events' subjects (every status change of a resource emits an event with
    /// the resource's subject).
    func committed(_ events: [CommerceEvent]) {
        guard !events.isEmpty else { return }
        metrics.committed(events)
        testFaults.afterCommit?(events.map(\.type))
        wakeRelay.yield()
        if waiters.count > 0 { waiters.notify(events.lazy.compactMap(\.subject).map(waitKey)) }
    }

    func wakeRelayPeriodically() { wakeRelay.yield() }

    /// Reads the outbox's size and its oldest row's age into `metrics`. The outbox is the
    /// service's, shared by its processes: every process reports the same figures.
    func sampleOutbox() async throws {
        let (rows, oldest) = try await database.read { db -> (Int64, Int64?) in
            // Rows written before `created_at` existed have 0: they count, but have no age.
            guard let row = try db.rows("SELECT count(*) AS n, min(NULLIF(created_at, 0)) AS oldest FROM outbox").first else { return (0, nil) }
            return (try row["n"], try row["oldest"])
        }
        let now = Timestamp.nowMs()
        metrics.outbox(rows: Int(rows), oldestAge: oldest.map { .milliseconds(max(0, now - $0)) })
    }
    func finishRelay() {
        wakeRelay.finish()
        watcher?.cancel()
    }

    /// The runtime's tables, in every service's database.
    static let runtimeMigrations = [
        SQLMigration(
            "runtime-v1",
            """
            CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, key TEXT NOT NULL,
                                 value BLOB NOT NULL, event_id TEXT NOT NULL, type TEXT NOT NULL);
            CREATE TABLE inbox (event_id TEXT PRIMARY KEY, type TEXT NOT NULL, processed_at INTEGER NOT NULL) WITHOUT ROWID;
            CREATE TABLE rejected_events (topic TEXT NOT NULL, partition INTEGER NOT NULL, "offset" INTEGER NOT NULL,
                                          key TEXT, value BLOB NOT NULL, error TEXT NOT NULL, rejected_at INTEGER NOT NULL,
                                          PRIMARY KEY (topic, partition, "offset"));
            CREATE TABLE idempotency (key TEXT PRIMARY KEY, result BLOB NOT NULL) WITHOUT ROWID;
            """),
        // v1 kept answers without what they answered, so a key could not be checked against its
        // request; those rows cannot be bound after the fact and are dropped.
        SQLMigration(
            "runtime-v2",
            """
            DROP TABLE idempotency;
            CREATE TABLE idempotency_keys (key TEXT PRIMARY KEY, request TEXT NOT NULL, fingerprint BLOB NOT NULL,
                                           status INTEGER NOT NULL, answer BLOB NOT NULL) WITHOUT ROWID;
            """),
        OutboxTakeover.migration,
        // Keys get their time, for pruning (`Retention`); those stored before have 0 and are kept.
        SQLMigration("runtime-v4", "ALTER TABLE idempotency_keys ADD COLUMN created_at INTEGER NOT NULL DEFAULT 0;"),
        // Outbox rows get their time, for the age of the oldest (`ServiceMetrics`); earlier rows have 0.
        SQLMigration("runtime-v5", "ALTER TABLE outbox ADD COLUMN created_at INTEGER NOT NULL DEFAULT 0;"),
        // The trace context written with the row, so the relay re-injects it as the Kafka header.
        SQLMigration("runtime-v6", "ALTER TABLE outbox ADD COLUMN traceparent TEXT;"),
        // The context an Idempotency-Key's first request ran in, for a retry's `traceresponse`.
        SQLMigration("runtime-v7", "ALTER TABLE idempotency_keys ADD COLUMN traceparent TEXT;"),
    ]
}

extension CommerceEvent {
    /// The event as the next hop of `parent`'s trace (a message of its own: with an exporter on,
    /// its "create" span, ended with the transaction), unless it already has a context. An event
    /// of no trace stays so.
    func hop(of parent: TraceParent?, topicPrefix: String, pending: PendingSpans?) -> CommerceEvent {
        guard traceparent == nil, let parent else { return self }
        var event = self
        event.traceparent = Telemetry.messageContext(topic: topicPrefix + topic, parent: parent, pending: pending)?.text
        return event
    }
}

enum Outbox {
    /// Appending takes no lock: transactions on a shared store commit in any order, and the
    /// relay waits at a gap in the sequence numbers until the transaction that holds it has
    /// ended (`OutboxRelay.Gap`). A row is appended after the reads that caused it, so an
    /// event that follows from another's commit gets a later number.
    static func append(_ events: [CommerceEvent], prefix: String, _ db: any SQLDatabase) throws {
        guard !events.isEmpty else { return }
        try db.announce(events.compactMap(\.subject))
        let now = Timestamp.nowMs()
        for event in events {
            try db.execute(
                "INSERT INTO outbox (topic, key, value, event_id, type, created_at, traceparent) VALUES (?, ?, ?, ?, ?, ?, ?)",
                prefix + event.topic, event.key, Data(try event.encoded()), event.id, event.type, now, event.traceparent)
        }
    }
}
