import Hummingbird
import Logging
import Metrics
import Prometheus
import ServiceLifecycle

/// The admin port of a long-running process: liveness, readiness and Prometheus metrics.
public enum AdminServer {
    /// What /readyz answers: ready or not, and a one-line reason either way.
    public struct Readiness: Sendable {
        public var ready: Bool
        public var detail: String
        public init(ready: Bool, detail: String) {
            self.ready = ready
            self.detail = detail
        }
    }

    /// Installs the Prometheus backend for swift-metrics; call once per process, first thing.
    public static func bootstrapMetrics() -> PrometheusCollectorRegistry {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultValueHistogramBuckets = [1, 10, 50, 100, 250, 500, 1_000, 2_000, 5_000]
        factory.defaultDurationHistogramBuckets = [
            .milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(25),
            .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
            .seconds(1), .seconds(5),
        ]
        MetricsSystem.bootstrap(factory)
        return registry
    }

    /// The HTTP application, a `Service` to run in the process's `ServiceGroup`.
    public static func application(
        host: String, port: Int, registry: PrometheusCollectorRegistry,
        readiness: @escaping @Sendable () -> Readiness, logger: Logger
    ) -> some Service {
        Addressed(
            makeApplication(host: host, port: port, registry: registry, readiness: readiness, logger: logger),
            name: "admin server", address: "\(host):\(port)")
    }

    /// An HTTP application whose failure to serve names it and its address, so
    /// "Address already in use" says which one.
    public struct Addressed<App: ApplicationProtocol>: Service {
        let application: App
        let name: String
        let address: String
        public init(_ application: App, name: String, address: String) {
            self.application = application
            self.name = name
            self.address = address
        }

        public func run() async throws {
            do { try await application.run() } catch { throw Failure(message: "\(name) on \(address): \(error)") }
        }
    }

    struct Failure: Error, CustomStringConvertible {
        let message: String
        var description: String { message }
    }

    static func makeApplication(
        host: String, port: Int, registry: PrometheusCollectorRegistry,
        readiness: @escaping @Sendable () -> Readiness, logger: Logger
    ) -> some ApplicationProtocol {
        let router = Router()
        router.get("/healthz") { _, _ in "ok\n" }
        router.get("/readyz") { _, _ -> Response in
            let r = readiness()
            return Response(
                status: r.ready ? .ok : .serviceUnavailable, headers: [.contentType: "text/plain; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(string: r.detail + "\n")))
        }
        router.get("/metrics") { _, _ -> Response in
            Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
        }
        return Application(router: router, configuration: .init(address: .hostname(host, port: port), serverName: "admin"), logger: logger)
    }
}
