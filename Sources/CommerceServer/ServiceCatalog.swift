import CommerceAPI
import Hummingbird
import OrderService
import PaymentService
import ProductService
import ServiceRuntime
import UserService

/// The services `commerce serve` can run, in the order `serve all` starts them, and the one
/// place that says what each is: its domain service (tables, the events it handles), its HTTP
/// routes, the topics it reads. (The topic an event is written to follows from its type alone,
/// `CommerceEvent.topic(forType:)`, whoever emits it.) `serve` and the router both read it, so
/// neither can know a service the other does not.
public enum ServiceCatalog: String, CaseIterable, Sendable {
    case user, product, order, payment

    /// The entry named `name`, as `serve` takes it and a `ServiceNode` is named.
    public init(named name: String) throws(Unknown) {
        guard let entry = Self(rawValue: name) else { throw Unknown(name: name) }
        self = entry
    }

    /// A name that is no entry of the catalog; says so in one line, with the names it knows.
    public struct Unknown: Error, CustomStringConvertible {
        public let name: String
        public var description: String { "no service '\(name)': the services are \(ServiceCatalog.names)" }
    }

    /// "user, product, order, payment", for help and errors.
    public static var names: String { allCases.map(\.rawValue).joined(separator: ", ") }

    /// A new instance of the domain service; its `name` is this entry's.
    public func makeService() -> any DomainService {
        switch self {
        case .user: UserService()
        case .product: ProductService()
        case .order: OrderService()
        case .payment: PaymentService()
        }
    }

    /// Adds this service's routes to `router`, answered by `node`.
    public func registerRoutes(on router: Router<CommerceContext>, node: ServiceNode) {
        switch self {
        case .user: UserAPI.register(on: router, node: node)
        case .product: ProductAPI.register(on: router, node: node)
        case .order: OrderAPI.register(on: router, node: node)
        case .payment: PaymentAPI.register(on: router, node: node)
        }
    }

    /// The topics whose events the service handles (its domain service's own list).
    public var consumes: [String] { makeService().topics }
}
