import CommerceAPI
import Hummingbird
import OrderService
import PaymentService
import ProductService
import ServiceRuntime
import UserService

/// The one HTTP face of `commerce serve`: the routes of the services it runs, `/healthz` and
/// `/openapi.json` on one router; every error as JSON, HEAD wherever GET is, a 405 with
/// `Allow` for a known path asked with another method.
public enum CommerceRouter {
    /// - Parameters:
    ///   - nodes: the services this process runs.
    ///   - failure: why the process is stopping, once a service's consumer or relay failed
    ///     (`/healthz` answers 503 from then on); nil while all is well.
    public static func make(nodes: [ServiceNode], failure: @escaping @Sendable () -> String?) throws -> Router<BasicRequestContext> {
        let routes = RouteTable()
        // HEAD is GET without the body, as RFC 9110 §9.3.2 has every GET resource answer it.
        let router = Router(options: .autoGenerateHeadEndpoints)
        router.middlewares.add(APIErrorMiddleware(routes: routes))
        router.get("/healthz") { _, _ -> String in
            if let failure = failure() { throw APIError(.serviceUnavailable, code: "unavailable", "\(failure); the process is stopping") }
            return "ok\n"
        }
        for node in nodes {
            switch node.name {
            case "user": UserAPI.register(on: router, node: node)
            case "product": ProductAPI.register(on: router, node: node)
            case "order": OrderAPI.register(on: router, node: node)
            default: PaymentAPI.register(on: router, node: node)
            }
        }
        routes.record(router)
        try OpenAPIDocument.register(on: router, routes: routes)
        return router
    }
}
