import Foundation

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The commerce HTTP API as a shopper sees it. One base URL per service, so the services can
/// run in one process or four.
public struct APIClient: Sendable {
    public struct Endpoints: Sendable {
        public var user, product, order, payment: URL
        public init(all: URL) { (user, product, order, payment) = (all, all, all, all) }
    }

    public struct Failure: Error, CustomStringConvertible {
        public let status: Int
        public let body: String
        public var description: String {
            status == 0 ? body : "HTTP \(status): \(body.trimmingCharacters(in: .whitespacesAndNewlines))"
        }
    }

    /// Who a request acts as: a shopper for their own cart, orders, payments and balance; an
    /// operator to stock products, charge balances and audit (the invariant check).
    public enum Caller: Sendable, Hashable {
        case user(Int64)
        case `operator`
    }

    /// The bearer token for a caller; nil sends none (a server run with `--auth none`).
    public typealias Tokens = @Sendable (Caller) async throws -> String

    let endpoints: Endpoints
    let tokens: Tokens?
    let plain: any HTTPTransport = HTTPPool()
    let secure: any HTTPTransport

    public init(endpoints: Endpoints, concurrency: Int, tokens: Tokens? = nil) {
        self.endpoints = endpoints
        self.tokens = tokens
        secure = URLSessionTransport(concurrency: concurrency)
    }

    struct Balance: Decodable { let balance: Int64; let chargeId: Int64? }
    struct Product: Decodable { let id: Int64; let stock: Int64; let price: Int64 }
    struct Cart: Decodable { struct Line: Decodable { let productId: Int64; let quantity: Int64 }; let items: [Line] }
    struct Order: Decodable { let orderId: Int64; let status: String; let amount: Int64?; let reason: String? }
    struct Payment: Decodable { let paymentId: Int64; let amount: Int64; let status: String; let reason: String? }

    func balance(_ user: Int64) async throws -> Int64? {
        do { return try await get(endpoints.user, "/users/\(user)/balance", by: .user(user), as: Balance.self).balance } catch let f as Failure
            where f.status == 404
        {
            return nil
        }
    }
    func chargeReturningId(_ user: Int64, _ amount: Int64) async throws -> Int64 {
        try await post(endpoints.user, "/users/\(user)/charge", ["amount": amount], by: .operator, as: Balance.self).chargeId ?? 0
    }
    func createProduct(name: String, price: Int64, stock: Int64) async throws -> Product {
        try await post(endpoints.product, "/products", ProductBody(name: name, price: price, stock: stock), by: .operator, as: Product.self)
    }
    func product(_ id: Int64) async throws -> Product { try await get(endpoints.product, "/products/\(id)", by: .operator, as: Product.self) }
    func addToCart(_ user: Int64, _ product: Int64, _ quantity: Int64) async throws {
        _ = try await post(endpoints.product, "/users/\(user)/cart", ["productId": product, "quantity": quantity], by: .user(user), as: Cart.self)
    }
    func cart(_ user: Int64) async throws -> [Int64: Int64] {
        Dictionary(
            try await get(endpoints.product, "/users/\(user)/cart", by: .user(user), as: Cart.self).items.map { ($0.productId, $0.quantity) },
            uniquingKeysWith: +)
    }
    func placeOrder(_ user: Int64, _ items: [(Int64, Int64)]) async throws -> Order {
        try await post(
            endpoints.order, "/orders", OrderBody(userId: user, items: items.map { .init(productId: $0.0, quantity: $0.1) }), by: .user(user),
            as: Order.self)
    }
    func order(_ id: Int64) async throws -> Order { try await get(endpoints.order, "/orders/\(id)", by: .operator, as: Order.self) }
    /// A long poll by the order's shopper: answers once the order left PENDING, or after `waitMs` with it as it is.
    func order(_ id: Int64, of user: Int64, waitMs: Int) async throws -> Order {
        try await get(
            endpoints.order, "/orders/\(id)", query: "timeoutMs=\(waitMs)", timeout: .milliseconds(waitMs) + .seconds(30), by: .user(user),
            as: Order.self)
    }
    func pay(order: Int64, user: Int64, amount: Int64) async throws -> Payment {
        try await post(endpoints.payment, "/payments", ["orderId": order, "userId": user, "amount": amount], by: .user(user), as: Payment.self)
    }
    func payment(_ id: Int64) async throws -> Payment { try await get(endpoints.payment, "/payments/\(id)", by: .operator, as: Payment.self) }
    /// A long poll by the payment's shopper: answers once the payment left REQUESTED, or after `waitMs` with it as it is.
    func payment(_ id: Int64, of user: Int64, waitMs: Int) async throws -> Payment {
        try await get(
            endpoints.payment, "/payments/\(id)", query: "timeoutMs=\(waitMs)", timeout: .milliseconds(waitMs) + .seconds(30), by: .user(user),
            as: Payment.self)
    }

    /// Fails fast, naming the URL, when nothing answers there: the retries below are for a
    /// service that restarts mid-run, not for one that was never started.
    func checkReachable() async throws {
        for base in Set([endpoints.user, endpoints.product, endpoints.order, endpoints.payment]) {
            do {
                _ = try await transport(base).send(
                    method: "GET", url: base.appendingPathComponent("/healthz"), body: nil, headers: [], timeout: .seconds(5))
            } catch {
                throw Failure(status: 0, body: "no commerce service answers at \(base.absoluteString): \(error)")
            }
        }
    }

    struct ProductBody: Encodable { let name: String; let price: Int64; let stock: Int64 }
    struct OrderBody: Encodable {
        struct Item: Encodable { let productId: Int64; let quantity: Int64 }
        let userId: Int64
        let items: [Item]
    }

    private func transport(_ base: URL) -> any HTTPTransport { base.scheme == "https" ? secure : plain }

    private func get<T: Decodable>(
        _ base: URL, _ path: String, query: String? = nil, timeout: Duration = .seconds(30), by caller: Caller, as: T.Type
    ) async throws -> T {
        var url = base.appendingPathComponent(path)
        if let query, let withQuery = URL(string: url.absoluteString + "?" + query) { url = withQuery }
        return try await send("GET", url, body: nil, headers: try await authorization(caller), timeout: timeout, as: T.self)
    }

    private func post<T: Decodable>(_ base: URL, _ path: String, _ body: some Encodable, by caller: Caller, as: T.Type) async throws -> T {
        // One key per intended request, so the retries below can never create anything twice.
        try await send(
            "POST", base.appendingPathComponent(path), body: try JSONEncoder().encode(body),
            headers: [("Content-Type", "application/json"), ("Idempotency-Key", UUID().uuidString)] + (try await authorization(caller)),
            timeout: .seconds(30), as: T.self)
    }

    private func authorization(_ caller: Caller) async throws -> [(String, String)] {
        guard let tokens else { return [] }
        return [("Authorization", "Bearer \(try await tokens(caller))")]
    }

    /// Retries what never got an answer (a service restarting) and a 503 (a long poll over the
    /// process's limit, a database unreachable for a moment) for up to a minute. A POST carries
    /// its Idempotency-Key, so a retry never creates anything twice.
    private func send<T: Decodable>(
        _ method: String, _ url: URL, body: Data?, headers: [(String, String)], timeout: Duration, as: T.Type
    ) async throws -> T {
        let deadline = Date().addingTimeInterval(60)
        let transport = transport(url)
        var answer: (Int, Data)?
        while answer == nil {
            do {
                answer = try await transport.send(method: method, url: url, body: body, headers: headers, timeout: timeout)
                if answer?.0 == 503, Date() < deadline {
                    answer = nil
                    try await Task.sleep(for: .seconds(1))
                }
            } catch let error as TransportFailure where Date() < deadline {
                _ = error
                try await Task.sleep(for: .milliseconds(250))
            }
        }
        let (status, data) = answer!
        guard (200..<300).contains(status) else { throw Failure(status: status, body: String(decoding: data, as: UTF8.self)) }
        return try JSONDecoder().decode(T.self, from: data)
    }
}
