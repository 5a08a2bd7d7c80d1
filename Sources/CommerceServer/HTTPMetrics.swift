import Hummingbird
import Prometheus

/// Request durations by route pattern (`/orders/{id}`, never the path itself), method and
/// status, for `commerce_http_request_duration_seconds`. Outermost, so it sees the status the
/// client gets (errors are answered by `APIErrorMiddleware` inside it).
struct HTTPMetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    let registry: PrometheusCollectorRegistry

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let started = ContinuousClock.now
        do {
            let response = try await next(request, context)
            record(request, context, status: response.status.code, since: started)
            return response
        } catch {
            record(request, context, status: (error as? any HTTPResponseError)?.status.code ?? 500, since: started)
            throw error
        }
    }

    private func record(_ request: Request, _ context: Context, status: Int, since started: ContinuousClock.Instant) {
        let method = HTTPRequestSeries.methodLabel(request.method)
        registry.makeDurationHistogram(
            descriptor: HTTPRequestSeries.name,
            labels: [("route", context.endpointPath ?? "unmatched"), ("method", method), ("status", String(status))],
            buckets: HTTPRequestSeries.buckets
        ).record(ContinuousClock.now - started)
    }
}

/// The request series' name, buckets and method labels, built once, not per request (a generic middleware
/// cannot hold static stored properties).
enum HTTPRequestSeries {
    static let buckets: [Duration] = [
        .milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
        .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(5), .seconds(30),
    ]
    static let methods: Set<String> = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]

    /// Methods outside the API's own are one label, so a client cannot grow the label set.
    static func methodLabel(_ method: HTTPRequest.Method) -> String { methods.contains(method.rawValue) ? method.rawValue : "other" }
    nonisolated(unsafe) static let name = MetricNameDescriptor(  // immutable; the type is not marked Sendable
        namespace: "commerce", metricName: "http_request_duration", unitName: "seconds",
        helpText: "HTTP requests answered, by route pattern, method and status (long polls last until their change or timeout).")
}
