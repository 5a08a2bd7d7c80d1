import CommerceServer
import Events
import Foundation
import SQLStore
import SQLiteStore
import ServiceRuntime
import TestSupport
import Testing

/// `ServiceCatalog`, the one list of services that `serve` starts and the router serves.
@Suite("Service catalog")
struct ServiceCatalogTests {
    @Test func theCatalogListsTheFourServicesWithTheTopicsTheyRead() {
        #expect(ServiceCatalog.allCases == [.user, .product, .order, .payment])
        for entry in ServiceCatalog.allCases { #expect(entry.makeService().name == entry.rawValue) }
        #expect(ServiceCatalog.user.consumes == [Topic.payment])
        #expect(ServiceCatalog.product.consumes == [Topic.order, Topic.product])
        #expect(ServiceCatalog.order.consumes == [Topic.product, Topic.balance, Topic.payment])
        #expect(ServiceCatalog.payment.consumes == [Topic.balance, Topic.order])
    }

    @Test func eachServiceServesItsOwnRoutes() async throws {
        let (common, commonDirectory) = try await APIDescriptionTests.router(services: [])
        defer { try? FileManager.default.removeItem(atPath: commonDirectory) }
        let shared = Set(common.routes.map { "\($0.method.rawValue) \($0.path)" })
        let expected: [ServiceCatalog: Set<String>] = [
            .user: ["POST /users/{userId}/charge", "GET /users/{userId}/balance"],
            .product: ["POST /products", "GET /products/{productId}", "POST /users/{userId}/cart", "GET /users/{userId}/cart"],
            .order: ["POST /orders", "GET /orders/{orderId}"],
            .payment: ["POST /payments", "GET /payments/{paymentId}"],
        ]
        for entry in ServiceCatalog.allCases {
            let (router, directory) = try await APIDescriptionTests.router(services: [entry.rawValue])
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let own = Set(router.routes.map { "\($0.method.rawValue) \($0.path)" }).subtracting(shared)
            #expect(own == expected[entry], "\(entry)")
        }
    }

    /// No service falls through to another's routes: a node the catalog does not name stops the router.
    @Test func theRouterRefusesAServiceTheCatalogDoesNotName() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("catalog-\(UUID().uuidString.prefix(8))").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let node = try await ServiceNode(service: Shipping(), store: SQLiteStore(path: "\(directory)/shipping.sqlite"))
        let error = #expect(throws: ServiceCatalog.Unknown.self) { try CommerceRouter.make(nodes: [node], authentication: .none) { nil } }
        #expect(error?.description == "no service 'shipping': the services are user, product, order, payment")
    }

    @Test func serveRefusesAnUnknownServiceInOneLine() async throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("serve-unknown-\(UUID().uuidString.prefix(6)).txt").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        let status = await shell("'\(binary("commerce"))' serve shipping >'\(out)' 2>&1")
        let text = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
        #expect(status != 0)
        #expect(text == "commerce: service must be user, product, order, payment or all, got 'shipping'\n", "\(text)")
    }

    /// A domain service that is no entry of the catalog.
    struct Shipping: DomainService {
        let name = "shipping"
        let topics: [String] = []
        let migrations: [SQLMigration] = []
        func handle(_ event: CommerceEvent, in db: any SQLDatabase, node: ServiceNode) throws -> [CommerceEvent] { [] }
    }
}
