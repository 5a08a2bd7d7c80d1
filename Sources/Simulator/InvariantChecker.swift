import Archiver
import Events
import Foundation
import Mongo

/// Reads the final state back through the API (and MongoDB) and checks that nothing was
/// created or lost: money, stock and carts conserved, every saga in one final state,
/// history equal to the completed payments. Compensations run after a saga's visible end,
/// so it re-checks until everything holds or the settle time is up.
struct InvariantChecker {
    let api: APIClient
    let options: SimulationOptions
    /// Says what the check is waiting for (the run's progress lines).
    let progress: @Sendable (String) -> Void

    struct Result {
        var outcomes: Outcomes
        var invariants: [Invariant]
        var settledAfter: Double
    }

    func settle(runs: [OrderRun], initial: Baseline, charged: [Int64: Int64], chargeIds: [Int64]) async throws -> Result {
        let started = Date()
        // One client for every re-check, not a new connection pool per pass.
        let history = try options.mongoURI.map { HistoryStore(database: try MongoClient(uri: $0).database(options.historyDatabase)) }
        while true {
            let outcomes: Outcomes, invariants: [Invariant]
            do {
                (outcomes, invariants) = try await check(runs: runs, initial: initial, charged: charged, chargeIds: chargeIds, history: history)
            } catch let error as MongoError where error.isTransient && Date().timeIntervalSince(started) <= options.settleSeconds {
                // MongoDB out of reach for a moment (a container restarting nearby, a name not
                // resolved): a pass that could not read is not a broken invariant; the next may read.
                progress("the history check could not read MongoDB, trying again: \(error)")
                try await Task.sleep(for: .seconds(1))
                continue
            }
            let elapsed = Date().timeIntervalSince(started)
            if invariants.allSatisfy(\.holds) || elapsed > options.settleSeconds {
                return Result(outcomes: outcomes, invariants: invariants, settledAfter: elapsed)
            }
            try await Task.sleep(for: .milliseconds(500))
        }
    }

    private func check(
        runs: [OrderRun], initial: Baseline, charged: [Int64: Int64], chargeIds: [Int64],
        history: HistoryStore?
    ) async throws -> (Outcomes, [Invariant]) {
        var outcomes = Outcomes()
        var problems: [String: [String]] = [:]
        var spent: [Int64: Int64] = [:]
        var taken: [Int64: Int64] = [:]  // product -> quantity held by live orders
        var takenFromCart: [Int64: [Int64: Int64]] = [:]
        var added: [Int64: [Int64: Int64]] = [:]
        var completedSagas: Set<String> = []
        var paymentSagas: [String] = []
        for run in runs {
            let order = try await api.order(run.orderId)
            outcomes.record(order: order)
            for (p, q) in run.addedToCart { added[run.userId, default: [:]][p, default: 0] += q }
            if order.status == "PLACED" || order.status == "PAID" {
                for (p, q) in run.items {
                    taken[p, default: 0] += q
                    takenFromCart[run.userId, default: [:]][p, default: 0] += q
                }
            } else if order.status != "CANCELLED" {
                problems["final", default: []].append("order \(run.orderId) is \(order.status)")
            }
            var completed = 0
            for id in run.payments {
                let payment = try await api.payment(id)
                outcomes.record(payment: payment)
                paymentSagas.append("pay-\(id)")
                if payment.status == "COMPLETED" {
                    completed += 1
                    completedSagas.insert("pay-\(id)")
                    spent[run.userId, default: 0] += payment.amount
                } else if payment.status != "FAILED" {
                    problems["final", default: []].append("payment \(id) is \(payment.status)")
                }
            }
            if (order.status == "PAID") != (completed == 1) || completed > 1 {
                problems["final", default: []].append("order \(run.orderId) is \(order.status) with \(completed) completed payments")
            }
        }
        for (user, before) in initial.balances.sorted(by: { $0.key < $1.key }) {
            let now = try await api.balance(user) ?? 0
            let expected = before + (charged[user] ?? 0) - (spent[user] ?? 0)
            if now != expected { problems["money", default: []].append("user \(user) has \(now), expected \(expected)") }
        }
        for (product, before) in initial.stock.sorted(by: { $0.key < $1.key }) {
            let now = try await api.product(product).stock
            let expected = before - (taken[product] ?? 0)
            if now != expected { problems["stock", default: []].append("product \(product) has \(now), expected \(expected)") }
        }
        for (user, before) in initial.carts.sorted(by: { $0.key < $1.key }) {
            let now = try await api.cart(user)
            for product in Set(before.keys).union(now.keys).union(added[user]?.keys ?? [:].keys) {
                let expected = (before[product] ?? 0) + (added[user]?[product] ?? 0) - (takenFromCart[user]?[product] ?? 0)
                if (now[product] ?? 0) != expected {
                    problems["carts", default: []].append("user \(user) holds \(now[product] ?? 0) of product \(product), expected \(expected)")
                }
            }
        }
        var invariants = [
            Invariant(name: "every order and payment in one final state", problems: problems["final"] ?? []),
            Invariant(name: "money conserved (charged - completed payments)", problems: problems["money"] ?? []),
            Invariant(name: "stock conserved (initial - live orders)", problems: problems["stock"] ?? []),
            Invariant(name: "carts conserved (added - live orders)", problems: problems["carts"] ?? []),
        ]
        if let history {
            invariants.append(try await historyInvariant(db: history, paymentSagas: paymentSagas, completed: completedSagas, chargeIds: chargeIds))
        }
        return (outcomes, invariants)
    }

    private func historyInvariant(db: HistoryStore, paymentSagas: [String], completed: Set<String>, chargeIds: [Int64]) async throws -> Invariant {
        var problems: [String] = []
        let payments = try await db.sagaIds(of: .payment, among: paymentSagas)
        if payments.count != Set(payments).count { problems.append("\(HistoryKind.payment.collection) has duplicates") }
        if Set(payments) != completed {
            problems.append("\(HistoryKind.payment.collection) holds \(Set(payments).count) of this run's payments, \(completed.count) completed")
        }
        let deducts = try await db.sagaIds(of: .balance, among: paymentSagas, type: EventType.balanceDeducted)
        if Set(deducts) != completed || deducts.count != completed.count {
            problems.append("\(HistoryKind.balance.collection) holds \(deducts.count) deductions of this run, \(completed.count) payments completed")
        }
        let charges = try await db.sagaIds(of: .balance, among: chargeIds.map { "charge-\($0)" })
        if charges.count != chargeIds.count {
            problems.append("\(HistoryKind.balance.collection) holds \(charges.count) of this run's \(chargeIds.count) charges")
        }
        return Invariant(name: "history in MongoDB = completed payments and charges", problems: problems)
    }
}

public struct Invariant: Sendable {
    public var name: String
    public var problems: [String]
    public var holds: Bool { problems.isEmpty }
}

/// Sagas by final status and reason; numbers in reasons are masked so like groups with like.
public struct Outcomes: Sendable {
    public var orders: [String: Int] = [:]
    public var payments: [String: Int] = [:]

    mutating func record(order: APIClient.Order) {
        orders[Self.key(order.status, order.reason), default: 0] += 1
    }

    mutating func record(payment: APIClient.Payment) {
        payments[Self.key(payment.status, payment.reason), default: 0] += 1
    }

    static func key(_ status: String, _ reason: String?) -> String {
        guard let reason else { return status }
        return "\(status): " + reason.replacingOccurrences(of: "[0-9]+", with: "#", options: .regularExpression)
    }
}

public struct SimulationReport: Sendable {
    public var outcomes: Outcomes
    public var invariants: [Invariant]
    public var elapsed: Double
    public var settledAfter: Double
    public var shopping: Shopping?
    public var passed: Bool { invariants.allSatisfy(\.holds) }

    public var rendered: String {
        var lines = ["", "order sagas (\(outcomes.orders.values.reduce(0, +))):"]
        lines += outcomes.orders.sorted { $0.key < $1.key }.map { "  \(String($0.value).leftPad(6))  \($0.key)" }
        lines += ["payment sagas (\(outcomes.payments.values.reduce(0, +))):"]
        lines += outcomes.payments.sorted { $0.key < $1.key }.map { "  \(String($0.value).leftPad(6))  \($0.key)" }
        lines += ["invariants (settled \(String(format: "%.1f", settledAfter)) s after the last saga ended):"]
        for i in invariants {
            lines.append("  \(i.holds ? "ok  " : "FAIL") \(i.name)")
            lines += i.problems.prefix(5).map { "         \($0)" }
            if i.problems.count > 5 { lines.append("         ... and \(i.problems.count - 5) more") }
        }
        lines += shopping?.rendered ?? []
        lines.append(String(format: "%@ in %.1f s", passed ? "all invariants hold" : "INVARIANTS VIOLATED", elapsed))
        return lines.joined(separator: "\n")
    }
}

extension String {
    func leftPad(_ width: Int) -> String { String(repeating: " ", count: max(0, width - count)) + self }
}
