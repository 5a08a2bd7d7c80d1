import Events
import Foundation
import Logging
import PostgresNIO
import TestSupport
import Testing

/// A replica that stops without dying, as a stalled VM or a long pause does, or that loses its
/// path to the database without a word: the others must carry on without it, and it must not
/// publish once it is back.
@Suite("a frozen or cut-off replica on PostgreSQL")
struct FrozenReplicaTests {
    /// The replica leading the outbox relays is SIGSTOPped while sagas go through the other.
    @Test func theOthersTakeOverFromAFrozenLeaderAndItPublishesNothingOnWaking() async throws {
        let s = try await CommerceScenario(backend: .postgres, replicas: 2)
        let product = try await s.shop(stock: 1_000, balance: 1_000_000, quantity: 100)
        let leader = try await Self.leadingReplica(s)
        let frozen = s.replicas[leader].process.processIdentifier
        try await Self.sagasGoOn(s, product: product, without: leader, lost: { kill(frozen, SIGSTOP) }, back: { kill(frozen, SIGCONT) })
    }

    /// The replica leading the relays loses its path to PostgreSQL (a proxy that stops
    /// forwarding, closing nothing) while sagas go through the other; then the path heals.
    @Test func theOthersTakeOverFromALeaderCutOffFromTheDatabaseAndItPublishesNothingAfter() async throws {
        let server = try #require(URLComponents(string: postgresURL)?.port)
        let proxies = [try PartitionProxy(targetPort: server), try PartitionProxy(targetPort: server)]
        defer { for proxy in proxies { proxy.stop() } }
        let s = try await CommerceScenario(backend: .postgres, replicas: 2, databasePorts: [0: proxies[0].port, 1: proxies[1].port])
        let product = try await s.shop(stock: 1_000, balance: 1_000_000, quantity: 100)
        let leader = try await Self.leadingReplica(s)
        try await Self.sagasGoOn(
            s, product: product, without: leader, lost: { proxies[leader].partition() }, back: { proxies[leader].heal() },
            before: {
                // Its consumers gave their partitions up while cut off (not only its relays).
                let left = try await eventually { s.replicas[leader].output.contains("consumer left its group") }
                #expect(
                    left,
                    "the cut-off process's consumers left their groups: \(s.replicas[leader].output)")
            })
    }

    /// The replica leading the most relays, once every relay is led (usually all four: the
    /// replica that started first).
    static func leadingReplica(_ s: CommerceScenario) async throws -> Int {
        var leader = -1
        #expect(
            try await eventually {
                let locks = try await Self.relayLocks(s)
                let led = s.replicas.map { p in locks.filter { $0.0 == "commerce-\(p.process.processIdentifier)" }.count }
                leader = led[0] >= led[1] ? 0 : 1
                return locks.count == 4
            }, "every relay is led")
        return leader
    }

    /// While replica `lost` is away (`lost()` until `back()`), the other takes over each relay
    /// within 10 s and every saga through it completes. Once back, the old leader leads
    /// nothing and publishes nothing: orders it takes are published once, by its successor, and
    /// no event is on its topic twice.
    static func sagasGoOn(
        _ s: CommerceScenario, product: Int64, without lostReplica: Int, lost: () -> Void, back: () -> Void,
        before finishing: () async throws -> Void = {}
    ) async throws {
        let live = 1 - lostReplica
        let stopped = ContinuousClock.now
        lost()
        do {
            #expect(
                try await eventually(20) {
                    let locks = try await Self.relayLocks(s)
                    return Set(locks.map(\.0)) == ["commerce-\(s.replicas[live].process.processIdentifier)"] && locks.count == 4
                }, "the live replica leads every relay")
            let takeover = ContinuousClock.now - stopped
            #expect(takeover < .seconds(10), "takeover took \(takeover)")
            // Sagas through the live replica, start to end.
            for _ in 0..<5 {
                let order = try await s.call("POST", "/orders", ["userId": 1, "items": [["productId": product, "quantity": 2]]], replica: live)
                let id = try #require((order.json["orderId"] as? NSNumber)?.int64Value, "\(order.json)")
                #expect(try await Self.status(s, "/orders/\(id)", waitingFor: "PLACED", replica: live) == "PLACED")
                let payment = try await s.call("POST", "/payments", ["orderId": id, "userId": 1, "amount": 2_000], replica: live)
                let paymentId = try #require((payment.json["paymentId"] as? NSNumber)?.int64Value, "\(payment.json)")
                #expect(try await Self.status(s, "/payments/\(paymentId)", waitingFor: "COMPLETED", replica: live) == "COMPLETED")
            }
        } catch {
            back()
            throw error
        }
        back()
        // Back, it commits (and would publish, were it still leading): the successor publishes.
        for _ in 0..<5 {
            let r = try await s.call("POST", "/users/1/charge", ["amount": 1], replica: lostReplica)
            #expect(r.status == 200, "\(r.json)")
        }
        let order = try await s.call("POST", "/orders", ["userId": 1, "items": [["productId": product, "quantity": 2]]], replica: lostReplica)
        let id = try #require((order.json["orderId"] as? NSNumber)?.int64Value, "\(order.json)")
        #expect(try await Self.status(s, "/orders/\(id)", waitingFor: "PLACED", replica: lostReplica) == "PLACED")
        let leaders = Set(try await Self.relayLocks(s).map(\.0))
        #expect(leaders == ["commerce-\(s.replicas[live].process.processIdentifier)"], "the process back leads nothing: \(leaders)")
        let copies = try await ReplicaTests.eventCopies(topics: [Topic.order, Topic.product, Topic.balance, Topic.payment].map { s.prefix + $0 })
        // The first charge, 8 events per saga, the 5 charges and the 4 events of the order placed after.
        let expected = 1 + 5 * 8 + 5 + 4
        #expect(copies.count == expected, "events on the topics: \(copies.count)")
        let twice = copies.filter { $0.value > 1 }
        #expect(twice.isEmpty, "\(twice.count) events published more than once: \(twice.prefix(5))")
        for process in s.replicas { #expect(process.process.isRunning, "\(process.output)") }
        try await finishing()
        await s.finish()
    }

    /// (application_name "commerce-PID", service) per relay leadership held in the scenario's
    /// database. Leadership is `pg_try_advisory_lock(hashtext('<schema>.outbox relay'))`: an int8 key,
    /// its high and low halves in classid and objid.
    static func relayLocks(_ s: CommerceScenario) async throws -> [(String, String)] {
        let url = URLComponents(string: Backend.url(of: s.database))!
        let configuration = PostgresConnection.Configuration(
            host: url.host ?? "127.0.0.1", port: url.port ?? 5432, username: url.user ?? "commerce", password: url.password,
            database: String(url.path.dropFirst()), tls: .disable)
        let logger = Logger(label: "test")
        let connection = try await PostgresConnection.connect(configuration: configuration, id: 1, logger: logger)
        defer { Task { try? await connection.close() } }
        let rows = try await connection.query(
            """
            SELECT a.application_name, k.service FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
              JOIN (SELECT s AS service, hashtext(s || '_service.outbox relay')::bigint AS key
                      FROM unnest(ARRAY['user', 'product', 'order', 'payment']) AS s) k
                ON ((l.classid::bigint << 32) | l.objid::bigint) = k.key
             WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
            """, logger: logger)
        var out: [(String, String)] = []
        for try await (name, service) in rows.decode((String, String).self) { out.append((name, service)) }
        return out
    }

    /// The resource's status once it is one of `statuses` ("PLACED,CANCELLED"; long polls on
    /// `replica`), or as it is after 60 s.
    static func status(_ s: CommerceScenario, _ path: String, waitingFor statuses: String, replica: Int) async throws -> String? {
        let deadline = ContinuousClock.now + .seconds(60)
        var last: String?
        while ContinuousClock.now < deadline {
            last = try await s.call("GET", "\(path)?waitFor=\(statuses)&timeoutMs=5000", replica: replica).json["status"] as? String
            if let last, statuses.split(separator: ",").contains(Substring(last)) { return last }
        }
        return last
    }
}
