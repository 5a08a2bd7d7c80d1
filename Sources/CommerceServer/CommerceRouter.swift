import CommerceAPI
import CommerceAuth
import Hummingbird
import Prometheus
import ServiceRuntime

/// The one HTTP face of `commerce serve`: the routes of the services it runs, `/healthz`,
/// `/metrics` and `/openapi.json` on one router; every error as JSON, HEAD wherever GET is, a
/// 405 with `Allow` for a known path asked with another method.
public enum CommerceRouter {
    /// - Parameters:
    ///   - nodes: the services this process runs; each must be named in `ServiceCatalog`, else
    ///     `make` throws `ServiceCatalog.Unknown`.
    ///   - failure: why the process is stopping, once a service's consumer or relay failed
    ///     (`/healthz` answers 503 from then on); nil while all is well.
    ///   - registry: what `/metrics` serves, the process's (the nodes' series are in it); by
    ///     default the first node's.
    ///   - authentication: who a request acts as: its bearer token's identity, or (`.none`) an operator.
    ///   - operationsApart: `/healthz` and `/metrics` are served by `makeOperations` on an
    ///     address of their own, not here.
    public static func make(
        nodes: [ServiceNode], registry: PrometheusCollectorRegistry? = nil, authentication: Authentication, operationsApart: Bool = false,
        failure: @escaping @Sendable () -> String?
    ) throws -> Router<CommerceContext> {
        let routes = RouteTable()
        let registry = registry ?? nodes.first?.metrics.registry ?? PrometheusCollectorRegistry()
        // HEAD is GET without the body, as RFC 9110 §9.3.2 has every GET resource answer it.
        let router = Router(context: CommerceContext.self, options: .autoGenerateHeadEndpoints)
        router.middlewares.add(HTTPMetricsMiddleware(registry: registry))
        router.middlewares.add(TraceContextMiddleware())
        router.middlewares.add(APIErrorMiddleware(routes: routes))
        router.middlewares.add(BearerTokenMiddleware(authentication: authentication))
        if !operationsApart { registerOperations(on: router, nodes: nodes, registry: registry, failure: failure) }
        for node in nodes {
            try ServiceCatalog(named: node.name).registerRoutes(on: router, node: node)
        }
        routes.record(router)
        try OpenAPIDocument.register(on: router, routes: routes)
        return router
    }

    /// `/healthz` and `/metrics` alone, for serve's `--ops-port`: probes and scrapers on an
    /// address of their own (a private one), apart from the API.
    public static func makeOperations(
        nodes: [ServiceNode], registry: PrometheusCollectorRegistry, failure: @escaping @Sendable () -> String?
    ) -> Router<BasicRequestContext> {
        let router = Router(options: .autoGenerateHeadEndpoints)
        router.middlewares.add(APIErrorMiddleware())
        registerOperations(on: router, nodes: nodes, registry: registry, failure: failure)
        return router
    }

    static func registerOperations<Context: RequestContext>(
        on router: Router<Context>, nodes: [ServiceNode], registry: PrometheusCollectorRegistry, failure: @escaping @Sendable () -> String?
    ) {
        router.get("/healthz") { _, _ -> String in
            if let failure = failure() { throw APIError(.serviceUnavailable, code: "unavailable", "\(failure); the process is stopping") }
            return "ok\n"
        }
        // The long polls of the process: one bound shared by its services (`ChangeWaiters`).
        let waiting = registry.makeGauge(
            descriptor: MetricNameDescriptor(
                namespace: "commerce", metricName: "long_poll_waiters", helpText: "Requests of this process waiting in a long poll for a change."))
        router.get("/metrics") { [waiters = nodes.first?.waiters] _, _ -> Response in
            waiting.set(Double(waiters?.count ?? 0))
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
        }
    }
}
