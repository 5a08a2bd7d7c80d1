import Events
import Foundation
import SQLiteStore
import TestSupport
import Testing
import UserService

@testable import ServiceRuntime

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// What `commerce serve` says on `/metrics` about the sagas it ran (the promtool check of the
/// same scrape is `scripts/check-monitoring metrics`).
@Suite("The services' /metrics")
struct ServiceMetricsTests {
    /// One payment that completes and one that fails for lack of balance: the outcomes, the
    /// events each way, the relay's leadership and the HTTP routes show.
    @Test(arguments: Backend.allCases) func sagasEventsLeadershipAndRoutesShow(backend: Backend) async throws {
        let s = try await CommerceScenario(backend: backend)
        let product = try await s.shop(price: 1_000, balance: 5_000, quantity: 6)
        let first = try await s.order(product: product)
        #expect(try await s.settledOrder(first) == "PLACED")
        let paid = try await s.pay(order: first, amount: 2_000)
        #expect(try await s.settledPayment(paid) == "COMPLETED")
        let second = try await s.order(product: product, quantity: 4)
        #expect(try await s.settledOrder(second) == "PLACED")
        let refused = try await s.pay(order: second, amount: 4_000)
        #expect(try await s.settledPayment(refused) == "FAILED")

        // Sagas end once (the inbox applies an event once); events may travel twice (a
        // redelivery is consumed again, a batch the broker may have stored is sent again).
        let exact: [(String, [String: String], Double)] = [
            ("commerce_sagas_ended_total", ["saga": "order", "state": "placed", "reason": "none"], 2),
            ("commerce_sagas_ended_total", ["saga": "payment", "state": "completed", "reason": "none"], 1),
            ("commerce_sagas_ended_total", ["saga": "payment", "state": "failed", "reason": "balance"], 1),
            // Outcomes not seen yet are there at 0, so a rate sees their first increase.
            ("commerce_sagas_ended_total", ["saga": "order", "state": "cancelled", "reason": "stock"], 0),
            ("commerce_sagas_ended_total", ["saga": "payment", "state": "failed", "reason": "injected"], 0),
            ("commerce_relay_leader", ["service": "order"], 1),
        ]
        let atLeast: [(String, [String: String], Double)] = [
            ("commerce_events_produced_total", ["service": "payment", "type": "commerce.payment.completed"], 1),
            ("commerce_events_produced_total", ["service": "user", "type": "commerce.balance.deduct-failed"], 1),
            ("commerce_events_consumed_total", ["service": "user", "type": "commerce.payment.requested"], 2),
        ]
        var text = ""
        _ = try await eventually {
            text = try await Self.metrics(s)
            return exact.allSatisfy { Self.value(text, $0.0, $0.1) == $0.2 } && atLeast.allSatisfy { (Self.value(text, $0.0, $0.1) ?? 0) >= $0.2 }
        }
        for (name, labels, value) in exact {
            #expect(Self.value(text, name, labels) == value, "\(name)\(labels) in:\n\(text)")
        }
        for (name, labels, value) in atLeast {
            #expect((Self.value(text, name, labels) ?? 0) >= value, "\(name)\(labels) in:\n\(text)")
        }
        // Route patterns, never paths: the two payments read by id are one series.
        let reads = Self.value(
            text, "commerce_http_request_duration_seconds_count", ["route": "/payments/{paymentId}", "method": "GET", "status": "200"])
        #expect((reads ?? 0) >= 2, "\(text)")
        #expect(!text.contains("/payments/\(paid)"), "a path with an id is no label")
        await s.finish()
    }

    /// The outbox gauges read the table: a row waiting (no relay runs here) is counted, and
    /// its age grows.
    @Test func anOutboxRowIsCountedWithItsAge() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("outbox-gauges-\(UUID().uuidString.prefix(8))").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let node = try await ServiceNode(service: UserService(), store: SQLiteStore(path: "\(directory)/user.sqlite"))
        try await node.sampleOutbox()
        var text = String(decoding: node.metrics.registry.emitToBuffer(), as: UTF8.self)
        #expect(Self.value(text, "commerce_outbox_backlog_rows", ["service": "user"]) == 0)
        #expect(Self.value(text, "commerce_outbox_oldest_row_age_seconds", ["service": "user"]) == 0)
        try await node.transaction { _ in
            ((), [node.event(EventType.balanceCharged, saga: "charge-1", subject: "user/1", .init(userId: 1, amount: 5))])
        }
        try await Task.sleep(for: .milliseconds(1_100))
        try await node.sampleOutbox()
        text = String(decoding: node.metrics.registry.emitToBuffer(), as: UTF8.self)
        #expect(Self.value(text, "commerce_outbox_backlog_rows", ["service": "user"]) == 1)
        let age = try #require(Self.value(text, "commerce_outbox_oldest_row_age_seconds", ["service": "user"]))
        #expect(age >= 1 && age < 60, "\(age)")
        await node.database.close()
    }

    /// The failure texts the domain services write, each in its class; anything else is
    /// "other", so a reason never becomes a label of its own.
    @Test func reasonsFallIntoAFewClasses() {
        let cases: [(String?, String)] = [
            ("insufficient stock for product 3: has 1, order needs 2", "stock"),
            ("insufficient balance: user 1 has 1000, payment needs 4000", "balance"),
            ("cart of user 4 holds 1 of product 2, order needs 2", "cart"),
            ("quantity of product 2 must be positive", "invalid"),
            ("order 12 is already paid by payment 7", "order-status"),
            ("payment of 10 does not match order amount 20", "order-status"),
            ("injected fault at stock.decrease", "injected"),
            ("a reason from a newer build 12345", "other"),
            (nil, "unknown"),
        ]
        for (reason, label) in cases { #expect(ServiceMetrics.reasonClass(reason) == label, "\(reason ?? "nil")") }
        #expect(ServiceMetrics.typeLabel("commerce.order.placed") == "commerce.order.placed")
        #expect(ServiceMetrics.typeLabel("x.\(UUID())") == "other")
    }

    static func metrics(_ s: CommerceScenario) async throws -> String {
        let (data, response) = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(s.port)/metrics")!)
        #expect((response as? HTTPURLResponse)?.statusCode == 200)
        return String(decoding: data, as: UTF8.self)
    }

    /// The value of the series `name` whose labels include `labels`; nil if there is none, the
    /// sum if there are several.
    static func value(_ text: String, _ name: String, _ labels: [String: String]) -> Double? {
        let values = prometheusValues(text, name, labels)
        return values.isEmpty ? nil : values.reduce(0, +)
    }
}
