import Foundation
import Logging

/// `commerce simulate`: seeded shoppers fill carts, order and pay through the public API,
/// some doomed by low stock, low balance, a cart that lacks the items, a wrong amount or a
/// double payment. Then it waits for every saga to settle and checks the invariants.
public struct SimulationOptions: Sendable {
    public var orders = 100
    public var users = 20
    public var concurrency = 8
    public var seed: UInt64 = 1
    public var endpoints: APIClient.Endpoints
    /// Bearer tokens for shoppers and the operator; nil when the services run with `--auth none`.
    public var tokens: APIClient.Tokens?
    /// Where the archiver writes; nil skips the history invariant.
    public var mongoURI: String?
    public var historyDatabase = "history"
    public var settleSeconds = 60.0
    /// Orders started per second (an open arrival rate, as far as `concurrency` shoppers allow);
    /// nil starts the next order as soon as a shopper is free.
    public var rate: Double?

    public init(endpoints: APIClient.Endpoints) { self.endpoints = endpoints }
}

/// What one shopper did, as the services finally saw it.
struct OrderRun: Sendable {
    var orderId: Int64
    var userId: Int64
    var items: [(Int64, Int64)]
    var addedToCart: [(Int64, Int64)]
    var payments: [Int64] = []
    /// Seconds from the order request to the shopper seeing PLACED (nil if it never was).
    var placedAfter: Double?
    /// Seconds from each payment request to the shopper seeing COMPLETED, for those that completed.
    var completedAfter: [Double] = []
}

public final class Simulation: Sendable {
    let options: SimulationOptions
    let api: APIClient
    let logger: Logger

    public init(options: SimulationOptions, logger: Logger = Logger(label: "simulate")) {
        self.options = options
        api = APIClient(endpoints: options.endpoints, concurrency: options.concurrency, tokens: options.tokens)
        self.logger = logger
    }

    public func run(progress: @escaping @Sendable (String) -> Void) async throws -> SimulationReport {
        try await api.checkReachable()
        let started = Date()
        var rng = SplitMix64(seed: options.seed)
        let users = (1...Int64(options.users)).map { $0 }
        let productCount = max(3, options.users / 2)
        let demandPerProduct = Double(options.orders * 4) / Double(productCount)

        // Before: balances and carts as they were, so a second run on the same data checks its own deltas.
        var initial = Baseline()
        for user in users {
            initial.balances[user] = try await api.balance(user) ?? 0
            initial.carts[user] = try await api.cart(user)
        }
        var products: [Int64: Int64] = [:]
        var prices: [Int64] = []
        for i in 0..<productCount {
            let price = Int64(rng.next(in: 10...200)) * 100
            let stock = Int64(demandPerProduct * 0.7) + Int64(rng.next(in: 0...2))
            let p = try await api.createProduct(name: "product-\(options.seed)-\(i)", price: price, stock: stock)
            products[p.id] = p.stock
            prices.append(price)
        }
        initial.stock = products
        let averageOrder = Double(prices.reduce(0, +)) / Double(prices.count) * 4
        let ordersPerUser = Double(options.orders) / Double(users.count)
        var charged: [Int64: Int64] = [:]
        var chargeIds: [Int64] = []
        for user in users {
            let amount = max(1_000, Int64(averageOrder * ordersPerUser * (0.5 + Double(rng.next(in: 0...100)) / 100)))
            chargeIds.append(try await api.chargeReturningId(user, amount))
            charged[user] = amount
        }
        progress("seeded \(users.count) users and \(products.count) products")

        let productIds = products.keys.sorted()
        let counter = Counter()
        let shoppingStarted = ContinuousClock.now
        let cpuBefore = ProcessCPU.seconds()
        let runs = try await withThrowingTaskGroup(of: [OrderRun].self) { group in
            for _ in 0..<options.concurrency {
                group.addTask {
                    var done: [OrderRun] = []
                    while let i = counter.next(below: self.options.orders) {
                        if let rate = self.options.rate {
                            try await Task.sleep(until: shoppingStarted + .seconds(Double(i) / rate), clock: .continuous)
                        }
                        done.append(try await self.shop(i, users: users, products: productIds))
                        let n = counter.finished()
                        if n % max(1, self.options.orders / 10) == 0 { progress("\(n)/\(self.options.orders) orders through their sagas") }
                    }
                    return done
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        let shopping = Shopping(
            orders: runs.count, seconds: (ContinuousClock.now - shoppingStarted).seconds,
            cpuSeconds: ProcessCPU.seconds() - cpuBefore,
            placedAfter: runs.compactMap(\.placedAfter), completedAfter: runs.flatMap(\.completedAfter))
        progress("all \(runs.count) order sagas ended; waiting for compensations and the archiver to settle")
        let checker = InvariantChecker(api: api, options: options, progress: progress)
        let result = try await checker.settle(runs: runs, initial: initial, charged: charged, chargeIds: chargeIds)
        return SimulationReport(
            outcomes: result.outcomes, invariants: result.invariants, elapsed: Date().timeIntervalSince(started),
            settledAfter: result.settledAfter, shopping: shopping)
    }

    /// One shopper: fill the cart, order, wait, pay (sometimes wrongly or twice), wait.
    private func shop(_ i: Int, users: [Int64], products: [Int64]) async throws -> OrderRun {
        var rng = SplitMix64(seed: options.seed &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(i))
        let user = users[rng.next(in: 0...(users.count - 1))]
        var items: [(Int64, Int64)] = []
        for product in products.shuffled(using: &rng).prefix(rng.next(in: 1...3)) { items.append((product, Int64(rng.next(in: 1...3)))) }
        // 5%: one line never reaches the cart, so the cart step must fail and compensate.
        let added = rng.next(in: 0...99) < 5 ? Array(items.dropFirst()) : items
        for (product, quantity) in added { try await api.addToCart(user, product, quantity) }
        let ordered = ContinuousClock.now
        let placed = try await api.placeOrder(user, items)
        var run = OrderRun(orderId: placed.orderId, userId: user, items: items, addedToCart: added)
        let order = try await waitFor {
            try await self.api.order(placed.orderId, of: user, waitMs: $0)
        } until: {
            $0.status != "PENDING"
        }
        guard order.status == "PLACED", let amount = order.amount else { return run }
        run.placedAfter = (ContinuousClock.now - ordered).seconds
        let roll = rng.next(in: 0...99)
        let payAmount = roll < 4 && amount > 1 ? amount - 1 : amount  // 4%: wrong amount
        for _ in 0..<(roll >= 94 ? 2 : 1) {  // 6%: paid twice
            let requested = ContinuousClock.now
            let payment = try await api.pay(order: placed.orderId, user: user, amount: payAmount)
            run.payments.append(payment.paymentId)
            let final = try await waitFor {
                try await self.api.payment(payment.paymentId, of: user, waitMs: $0)
            } until: {
                $0.status != "REQUESTED"
            }
            if final.status == "COMPLETED" { run.completedAfter.append((ContinuousClock.now - requested).seconds) }
        }
        return run
    }

    /// Long polls until `done` or the settle time is up: each request waits on the server (up to
    /// 10 s) for the saga to move, so a shopper asks about once per step instead of every 40 ms.
    func waitFor<T: Sendable>(_ fetch: @escaping @Sendable (_ waitMs: Int) async throws -> T, until done: (T) -> Bool) async throws -> T {
        let deadline = ContinuousClock.now + .seconds(options.settleSeconds)
        while true {
            let waitMs = max(0, min(10_000, Int(((deadline - ContinuousClock.now).seconds * 1_000).rounded(.down))))
            let asked = ContinuousClock.now
            let value = try await fetch(waitMs)
            if done(value) || ContinuousClock.now >= deadline { return value }
            // A server that answered before the wait was over does not long-poll (an older
            // version): fall back to asking every 40 ms.
            if ContinuousClock.now - asked < .milliseconds(waitMs / 2) { try await Task.sleep(for: .milliseconds(40)) }
        }
    }
}

/// What the shoppers saw while shopping: seeding before and settling after are not in it.
public struct Shopping: Sendable {
    public var orders: Int
    public var seconds: Double
    /// This process's own CPU (user + system) while shopping.
    public var cpuSeconds: Double
    /// Order request -> PLACED, seconds, for the orders that were placed.
    public var placedAfter: [Double]
    /// Payment request -> COMPLETED, seconds, for the payments that completed.
    public var completedAfter: [Double]

    /// Completed payments: each is an order+payment pair (a second payment of an order never completes).
    public var pairs: Int { completedAfter.count }

    /// Nearest-rank percentile, in milliseconds.
    public static func percentileMs(_ values: [Double], _ q: Double) -> Double {
        guard !values.isEmpty else { return .nan }
        let sorted = values.sorted()
        return sorted[max(0, min(sorted.count - 1, Int((q * Double(sorted.count)).rounded(.up)) - 1))] * 1_000
    }

    public var rendered: [String] {
        func latency(_ values: [Double]) -> String {
            String(
                format: "p50 %.1f ms, p99 %.1f ms, max %.1f ms (%d)", Self.percentileMs(values, 0.5), Self.percentileMs(values, 0.99),
                (values.max() ?? .nan) * 1_000, values.count)
        }
        return [
            String(
                format: "shopping: %d orders in %.2f s, %.1f orders/s; %d pairs completed, %.1f pairs/s", orders, seconds,
                Double(orders) / seconds, pairs, Double(pairs) / seconds),
            "saga latency: order request -> PLACED \(latency(placedAfter)); payment request -> COMPLETED \(latency(completedAfter))",
            String(format: "simulate CPU while shopping: %.2f s, %.2f ms per pair", cpuSeconds, cpuSeconds * 1_000 / Double(max(1, pairs))),
        ]
    }
}

#if canImport(Glibc)
private let RUSAGE_SELF_WHO = __rusage_who_t(RUSAGE_SELF.rawValue)
#else
private let RUSAGE_SELF_WHO = RUSAGE_SELF
#endif

/// This process's CPU time so far, user + system.
enum ProcessCPU {
    static func seconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF_WHO, &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

struct Baseline: Sendable {
    var balances: [Int64: Int64] = [:]
    var carts: [Int64: [Int64: Int64]] = [:]
    var stock: [Int64: Int64] = [:]
}

/// Hands out order numbers to the shopper tasks.
final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var issued = 0
    private var done = 0
    func next(below limit: Int) -> Int? {
        lock.withLock {
            guard issued < limit else { return nil }
            issued += 1
            return issued - 1
        }
    }
    func finished() -> Int {
        lock.withLock {
            done += 1; return done
        }
    }
}

/// Reproducible across platforms, unlike the system generator.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func next(in range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &self) }
}
