import Foundation
import Logging
import OrderService
import PostgresStore
import SQLStore
import ServiceRuntime
import Synchronization
import TestSupport
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// `GET /orders/{id}` and `GET /payments/{id}` with `waitFor` / `timeoutMs`: a shopper learns
/// that a saga moved without asking every 40 ms.
@Suite("long poll")
struct LongPollTests {
    @Test(arguments: Backend.allCases) func aLongPollAnswersAsSoonAsTheStatusChanges(backend: Backend) async throws {
        let s = try await CommerceScenario(backend: backend)
        let product = try await s.shop(price: 1_000, stock: 10, quantity: 2)
        let order = try await s.order(product: product, quantity: 2)
        #expect(try await s.settledOrder(order) == "PLACED")

        let poll = Task { try await s.timed("GET", "/orders/\(order)?waitFor=PAID&timeoutMs=25000") }
        try await Task.sleep(for: .seconds(1))
        let payment = try await s.pay(order: order, amount: 2_000)
        let paid = try await poll.value
        #expect(paid.status == 200 && paid.json["status"] as? String == "PAID", "\(paid.json)")
        #expect(paid.seconds >= 1, "it waited for the payment: \(paid.seconds) s")
        #expect(paid.seconds < 15, "it answered when the order was paid, not at the timeout: \(paid.seconds) s")

        // Without waitFor: until the payment leaves REQUESTED.
        let completed = try await s.timed("GET", "/payments/\(payment)?timeoutMs=25000")
        #expect(completed.status == 200 && completed.json["status"] as? String == "COMPLETED", "\(completed.json)")
        #expect(completed.seconds < 15)
        await s.finish()
    }

    @Test(arguments: Backend.allCases) func aLongPollAnswersAtItsTimeoutWithTheStateAsItIs(backend: Backend) async throws {
        let s = try await CommerceScenario(backend: backend)
        let product = try await s.shop(price: 1_000, stock: 3, quantity: 5)
        let placed = try await s.order(product: product, quantity: 2)
        #expect(try await s.settledOrder(placed) == "PLACED")

        let waited = try await s.timed("GET", "/orders/\(placed)?waitFor=PAID&timeoutMs=700")
        #expect(waited.status == 200 && waited.json["status"] as? String == "PLACED", "\(waited.json)")
        #expect(waited.seconds >= 0.7 && waited.seconds < 10, "\(waited.seconds) s")

        // Already as wanted: at once, however long the timeout.
        let already = try await s.timed("GET", "/orders/\(placed)?waitFor=PLACED,PAID&timeoutMs=25000")
        #expect(already.status == 200 && already.json["status"] as? String == "PLACED")
        #expect(already.seconds < 10)

        // CANCELLED is final: it can never become PAID, so there is nothing to wait for.
        let cancelled = try await s.order(product: product, quantity: 2)  // 1 left in stock
        #expect(try await s.settledOrder(cancelled) == "CANCELLED")
        let final = try await s.timed("GET", "/orders/\(cancelled)?waitFor=PAID&timeoutMs=25000")
        #expect(final.status == 200 && final.json["status"] as? String == "CANCELLED")
        #expect(final.seconds < 10)

        let unknown = try await s.timed("GET", "/orders/9999?timeoutMs=25000")
        #expect(unknown.status == 404 && unknown.seconds < 10)
        await s.finish()
    }

    @Test func badWaitParametersAreAFourHundred() async throws {
        let s = try await CommerceScenario()
        for query in ["timeoutMs=abc", "timeoutMs=-1", "timeoutMs=30001", "timeoutMs=1.5", "timeoutMs=", "timeoutMs=5&timeoutMs=6"] {
            let r = try await s.timed("GET", "/orders/1?\(query)")
            let error = r.json["error"] as? [String: Any]
            #expect(r.status == 400 && error?["code"] as? String == "bad_request", "\(query): \(r.status) \(r.json)")
            #expect((error?["message"] as? String)?.contains("timeoutMs") == true, "\(query): \(r.json)")
        }
        for (path, query) in [("/orders/1", "waitFor=SHIPPED"), ("/orders/1", "waitFor=PLACED,"), ("/payments/1", "waitFor=PLACED")] {
            let r = try await s.timed("GET", "\(path)?\(query)")
            let error = r.json["error"] as? [String: Any]
            #expect(r.status == 400 && (error?["message"] as? String)?.contains("waitFor must be") == true, "\(path)?\(query): \(r.status) \(r.json)")
        }
        await s.finish()
    }

    @Test func pastTheWaiterLimitALongPollIsAClearFiveOThree() async throws {
        let s = try await CommerceScenario(extraArguments: ["--max-waiters", "2"])
        let product = try await s.shop(price: 1_000, stock: 10, quantity: 2)
        let order = try await s.order(product: product, quantity: 2)
        #expect(try await s.settledOrder(order) == "PLACED")

        // Two holders take both places (one refused by a probe's brief place asks again); a probe
        // refused proves both wait, whatever the machine's speed.
        let holders = (0..<2).map { _ in
            Task {
                var held = try await s.timed("GET", "/orders/\(order)?waitFor=PAID&timeoutMs=6000")
                for _ in 0..<500 where held.status == 503 {
                    try await Task.sleep(for: .milliseconds(20))
                    held = try await s.timed("GET", "/orders/\(order)?waitFor=PAID&timeoutMs=6000")
                }
                return held
            }
        }
        var refused = try await s.timed("GET", "/orders/\(order)?waitFor=PAID&timeoutMs=1")
        for _ in 0..<200 where refused.status != 503 {
            try await Task.sleep(for: .milliseconds(20))
            refused = try await s.timed("GET", "/orders/\(order)?waitFor=PAID&timeoutMs=1")
        }
        let error = refused.json["error"] as? [String: Any]
        #expect(refused.status == 503 && error?["code"] as? String == "too_many_waiters", "\(refused.status) \(refused.json)")
        #expect(refused.headers["retry-after"] == "1", "\(refused.headers)")
        #expect(refused.seconds < 5, "refused at once")
        // What needs no waiting is still answered: a plain read, and a wait already satisfied.
        #expect(try await s.timed("GET", "/orders/\(order)").status == 200)
        #expect(try await s.timed("GET", "/orders/\(order)?waitFor=PLACED&timeoutMs=6000").status == 200)

        for holder in holders {
            let held = try await holder.value
            #expect(held.status == 200 && held.json["status"] as? String == "PLACED", "\(held.json)")
        }
        // The waiters were released when they answered.
        let again = try await s.timed("GET", "/orders/\(order)?waitFor=PAID&timeoutMs=300")
        #expect(again.status == 200 && again.json["status"] as? String == "PLACED")
        await s.finish()
    }
}

/// The waiter registry alone.
@Suite("change waiters")
struct ChangeWaitersTests {
    static func soon() -> ContinuousClock.Instant { .now + .seconds(20) }

    @Test func aChangeBeforeTheWaitIsNotMissed() async throws {
        let waiters = ChangeWaiters(limit: 10)
        let ticket = try waiters.register("order order/1")
        waiters.notify(["order order/1"])
        #expect(await waiters.wait(ticket, until: Self.soon()) == .changed)
        #expect(waiters.count == 0)
    }

    @Test func aNotifyWakesOnlyItsKey() async throws {
        let waiters = ChangeWaiters(limit: 10)
        let one = try waiters.register("order order/1")
        let two = try waiters.register("order order/2")
        let first = Task { await waiters.wait(one, until: Self.soon()) }
        let second = Task { await waiters.wait(two, until: ContinuousClock.now + .milliseconds(300)) }
        // Whether or not the waits have begun: a change to a registered key is never missed.
        waiters.notify(["order order/1", "payment payment/2"])
        #expect(await first.value == .changed)
        #expect(await second.value == .timedOut)
        #expect(waiters.count == 0)
    }

    @Test func theLimitIsKeptAndReleased() async throws {
        let waiters = ChangeWaiters(limit: 2)
        let a = try waiters.register("k")
        _ = try waiters.register("k")
        #expect(throws: ChangeWaiters.LimitReached.self) { try waiters.register("other") }
        waiters.cancel(a)
        #expect(waiters.count == 1)
        _ = try waiters.register("other")
        #expect(waiters.count == 2)
    }

    @Test func aCancelledWaitEndsAndFreesItsPlace() async throws {
        let waiters = ChangeWaiters(limit: 1)
        // Cancelled before it began to wait (a client gone at once): cancelled, and its place freed.
        let early = try waiters.register("k")
        let cancelledFirst = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return await waiters.wait(early, until: Self.soon())
        }
        #expect(await cancelledFirst.value == .cancelled)
        #expect(waiters.count == 0)
        // Cancelled whenever it comes: the same.
        let ticket = try waiters.register("k")
        let waiting = Task { await waiters.wait(ticket, until: Self.soon()) }
        waiting.cancel()
        #expect(await waiting.value == .cancelled)
        #expect(waiters.count == 0)
        _ = try waiters.register("k")
    }
}

/// An answer with its status, JSON body, headers (names lowercased) and how long it took.
struct TimedAnswer: @unchecked Sendable {  // the JSON is read-only once made
    let status: Int
    let json: [String: Any]
    let headers: [String: String]
    let seconds: Double
}

extension CommerceScenario {
    func timed(_ method: String, _ path: String) async throws -> TimedAnswer {
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
        request.httpMethod = method
        request.setValue("Bearer \(try await TestTokens.shared.token(.operator))", forHTTPHeaderField: "Authorization")
        request.timeoutInterval = 60
        let started = ContinuousClock.now
        let (data, response) = try await URLSession.shared.data(for: request)
        let elapsed = ContinuousClock.now - started
        let http = response as? HTTPURLResponse
        var headers: [String: String] = [:]
        for (name, value) in http?.allHeaderFields ?? [:] { headers["\(name)".lowercased()] = "\(value)" }
        return TimedAnswer(
            status: http?.statusCode ?? 0, json: (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:],
            headers: headers, seconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
    }
}

/// Long polls on a store shared by several processes read it when a commit announces a change,
/// never on a timer: a thousand shoppers waiting on orders that do not move cost the database
/// nothing while they wait.
@Suite("long poll on a shared store")
struct SharedStoreLongPollTests {
    /// A real PostgreSQL store whose reads are counted.
    final class CountingStore: SQLStore {
        let inner: PostgresStore
        let reads = Mutex(0)
        init(_ inner: PostgresStore) { self.inner = inner }
        var isShared: Bool { true }
        func write<T: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) throws -> T) async throws -> T { try await inner.write(body) }
        func read<T: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) throws -> T) async throws -> T {
            reads.withLock { $0 += 1 }
            return try await inner.read(body)
        }
        func migrate(_ migrations: [SQLMigration]) async throws { try await inner.migrate(migrations) }
        let watcher = Mutex<Task<Void, Never>?>(nil)
        /// How often the node was told that anything may have changed (its LISTEN (re)started).
        let listens = Mutex(0)
        func watchAnnouncements(_ onChange: @escaping @Sendable ([String]?) -> Void) -> Task<Void, Never>? {
            let task = inner.watchAnnouncements { [self] subjects in
                if subjects == nil { listens.withLock { $0 += 1 } }
                onChange(subjects)
            }
            watcher.withLock { $0 = task }
            return task
        }
        func tryLead(_ name: String) async throws -> (any SQLLease)? { try await inner.tryLead(name) }
        func newTransactionNumber() async throws -> UInt64? { try await inner.newTransactionNumber() }
        func close() async {
            watcher.withLock { $0?.cancel() }  // the node's LISTEN ends with the test
            await inner.close()
        }
    }

    /// 50 waiters for 3.5 s on an order nothing changes, once the node listens: each reads
    /// before it registers, after, and at its timeout, 3 reads however long it waits (one more
    /// each time the LISTEN reconnects, two more). Before, it read again every second: 6.
    @Test func waitersReadOnlyWhenWokenNotOnATimer() async throws {
        let schema = "lp\(UUID().uuidString.prefix(8).lowercased())_service"
        let store = CountingStore(PostgresStore(url: try PostgresURL(postgresURL), schema: schema, connections: 2, logger: Logger(label: "test")))
        let node = try await ServiceNode(service: OrderService(), store: store)
        #expect(try await eventually { store.listens.withLock { $0 } > 0 }, "the node listens")
        let before = store.reads.withLock { $0 }, listensBefore = store.listens.withLock { $0 }
        let waiters = 50
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<waiters {
                group.addTask {
                    _ = try await node.readAwaitingChange(
                        of: "order/1", timeout: .milliseconds(3_500),
                        { db in
                            try db.exists("SELECT 1 FROM orders WHERE id = 1")
                        }
                    ) { $0 }
                }
            }
            try await group.waitForAll()
        }
        let reads = store.reads.withLock { $0 } - before, relistens = store.listens.withLock { $0 } - listensBefore
        // A LISTEN that restarts wakes every waiter: it reads, registers again and reads again.
        #expect(reads <= (3 + 2 * relistens) * waiters, "\(reads) reads for \(waiters) waiters, LISTEN restarted \(relistens) times")
        #expect(reads >= waiters, "each waiter read at least once: \(reads)")
        _ = try? await store.write { db in try db.execute("DROP SCHEMA \"\(schema)\" CASCADE") }
        await store.close()
    }
}
