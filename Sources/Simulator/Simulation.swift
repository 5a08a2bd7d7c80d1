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
    /// Where the archiver writes; nil skips the history invariant.
    public var mongoURI: String?
    public var historyDatabase = "history"
    public var settleSeconds = 60.0

    public init(endpoints: APIClient.Endpoints) { self.endpoints = endpoints }
}

/// What one shopper did, as the services finally saw it.
struct OrderRun: Sendable {
    var orderId: Int64
    var userId: Int64
    var items: [(Int64, Int64)]
    var addedToCart: [(Int64, Int64)]
    var payments: [Int64] = []
}

public final class Simulation: Sendable {
    let options: SimulationOptions
    let api: APIClient
    let logger: Logger

    public init(options: SimulationOptions, logger: Logger = Logger(label: "simulate")) {
        self.options = options
        api = APIClient(endpoints: options.endpoints, concurrency: options.concurrency)
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
        let runs = try await withThrowingTaskGroup(of: [OrderRun].self) { group in
            for _ in 0..<options.concurrency {
                group.addTask {
                    var done: [OrderRun] = []
                    while let i = counter.next(below: self.options.orders) {
                        done.append(try await self.shop(i, users: users, products: productIds))
                        let n = counter.finished()
                        if n % max(1, self.options.orders / 10) == 0 { progress("\(n)/\(self.options.orders) orders through their sagas") }
                    }
                    return done
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        progress("all \(runs.count) order sagas ended; waiting for compensations and the archiver to settle")
        let checker = InvariantChecker(api: api, options: options)
        let result = try await checker.settle(runs: runs, initial: initial, charged: charged, chargeIds: chargeIds)
        return SimulationReport(
            outcomes: result.outcomes, invariants: result.invariants, elapsed: Date().timeIntervalSince(started),
            settledAfter: result.settledAfter)
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
        let placed = try await api.placeOrder(user, items)
        var run = OrderRun(orderId: placed.orderId, userId: user, items: items, addedToCart: added)
        let order = try await waitFor {
            try await self.api.order(placed.orderId)
        } until: {
            $0.status != "PENDING"
        }
        guard order.status == "PLACED", let amount = order.amount else { return run }
        let roll = rng.next(in: 0...99)
        let payAmount = roll < 4 && amount > 1 ? amount - 1 : amount  // 4%: wrong amount
        for _ in 0..<(roll >= 94 ? 2 : 1) {  // 6%: paid twice
            let payment = try await api.pay(order: placed.orderId, user: user, amount: payAmount)
            run.payments.append(payment.paymentId)
            _ = try await waitFor {
                try await self.api.payment(payment.paymentId)
            } until: {
                $0.status != "REQUESTED"
            }
        }
        return run
    }

    func waitFor<T: Sendable>(_ fetch: @escaping @Sendable () async throws -> T, until done: (T) -> Bool) async throws -> T {
        let deadline = Date().addingTimeInterval(options.settleSeconds)
        while true {
            let value = try await fetch()
            if done(value) || Date() > deadline { return value }
            try await Task.sleep(for: .milliseconds(40))
        }
    }
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
