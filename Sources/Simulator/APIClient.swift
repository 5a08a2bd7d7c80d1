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

    let endpoints: Endpoints
    let session: URLSession

    public init(endpoints: Endpoints, concurrency: Int) {
        self.endpoints = endpoints
        let configuration = URLSessionConfiguration.ephemeral
        configuration.httpMaximumConnectionsPerHost = max(4, concurrency)
        configuration.timeoutIntervalForRequest = 30
        session = URLSession(configuration: configuration)
    }

    struct Balance: Decodable { let balance: Int64; let chargeId: Int64? }
    struct Product: Decodable { let id: Int64; let stock: Int64; let price: Int64 }
    struct Cart: Decodable { struct Line: Decodable { let productId: Int64; let quantity: Int64 }; let items: [Line] }
    struct Order: Decodable { let orderId: Int64; let status: String; let amount: Int64?; let reason: String? }
    struct Payment: Decodable { let paymentId: Int64; let amount: Int64; let status: String; let reason: String? }

    func balance(_ user: Int64) async throws -> Int64? {
        do { return try await get(endpoints.user, "/users/\(user)/balance", as: Balance.self).balance } catch let f as Failure where f.status == 404 {
            return nil
        }
    }
    func chargeReturningId(_ user: Int64, _ amount: Int64) async throws -> Int64 {
        try await post(endpoints.user, "/users/\(user)/charge", ["amount": amount], as: Balance.self).chargeId ?? 0
    }
    func createProduct(name: String, price: Int64, stock: Int64) async throws -> Product {
        try await post(endpoints.product, "/products", ProductBody(name: name, price: price, stock: stock), as: Product.self)
    }
    func product(_ id: Int64) async throws -> Product { try await get(endpoints.product, "/products/\(id)", as: Product.self) }
    func addToCart(_ user: Int64, _ product: Int64, _ quantity: Int64) async throws {
        _ = try await post(endpoints.product, "/users/\(user)/cart", ["productId": product, "quantity": quantity], as: Cart.self)
    }
    func cart(_ user: Int64) async throws -> [Int64: Int64] {
        Dictionary(
            try await get(endpoints.product, "/users/\(user)/cart", as: Cart.self).items.map { ($0.productId, $0.quantity) }, uniquingKeysWith: +)
    }
    func placeOrder(_ user: Int64, _ items: [(Int64, Int64)]) async throws -> Order {
        try await post(
            endpoints.order, "/orders", OrderBody(userId: user, items: items.map { .init(productId: $0.0, quantity: $0.1) }), as: Order.self)
    }
    func order(_ id: Int64) async throws -> Order { try await get(endpoints.order, "/orders/\(id)", as: Order.self) }
    func pay(order: Int64, user: Int64, amount: Int64) async throws -> Payment {
        try await post(endpoints.payment, "/payments", ["orderId": order, "userId": user, "amount": amount], as: Payment.self)
    }
    func payment(_ id: Int64) async throws -> Payment { try await get(endpoints.payment, "/payments/\(id)", as: Payment.self) }

    /// Fails fast, naming the URL, when nothing answers there: the retries below are for a
    /// service that restarts mid-run, not for one that was never started.
    func checkReachable() async throws {
        for base in Set([endpoints.user, endpoints.product, endpoints.order, endpoints.payment]) {
            var request = URLRequest(url: base.appendingPathComponent("/healthz"))
            request.timeoutInterval = 5
            do { _ = try await session.data(for: request) } catch {
                throw Failure(status: 0, body: "no commerce service answers at \(base.absoluteString): \(error.localizedDescription)")
            }
        }
    }

    struct ProductBody: Encodable { let name: String; let price: Int64; let stock: Int64 }
    struct OrderBody: Encodable {
        struct Item: Encodable { let productId: Int64; let quantity: Int64 }
        let userId: Int64
        let items: [Item]
    }

    private func get<T: Decodable>(_ base: URL, _ path: String, as: T.Type) async throws -> T {
        try await send(URLRequest(url: base.appendingPathComponent(path)), as: T.self)
    }

    private func post<T: Decodable>(_ base: URL, _ path: String, _ body: some Encodable, as: T.Type) async throws -> T {
        var request = URLRequest(url: base.appendingPathComponent(path))
        request.httpMethod = "POST"
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.httpBody = try JSONEncoder().encode(body)
        // One key per intended request, so the retries below can never create anything twice.
        request.setValue(UUID().uuidString, forHTTPHeaderField: "Idempotency-Key")
        return try await send(request, as: T.self)
    }

    /// Retries what never got an answer (a service restarting) for up to a minute.
    private func send<T: Decodable>(_ request: URLRequest, as: T.Type) async throws -> T {
        let deadline = Date().addingTimeInterval(60)
        var answer: (Data, URLResponse)?
        while answer == nil {
            do { answer = try await session.data(for: request) } catch let error as URLError where Date() < deadline {
                _ = error
                try await Task.sleep(for: .milliseconds(250))
            }
        }
        let (data, response) = answer!
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        guard (200..<300).contains(status) else { throw Failure(status: status, body: String(decoding: data, as: UTF8.self)) }
        return try JSONDecoder().decode(T.self, from: data)
    }
}
