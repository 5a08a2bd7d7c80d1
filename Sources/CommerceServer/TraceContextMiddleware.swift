import Events
import HTTPTypes
import Hummingbird
import Telemetry
import Tracing

/// Opens the trace a saga's events carry: the request's W3C `traceparent` when it sends a
/// well-formed one (its next hop), a new trace otherwise. Handlers run with it as
/// `TraceParent.current`, which `ServiceNode.transaction` stamps on the events it writes; the
/// response names it in `traceresponse` (the W3C Trace Context level 3 draft's header), so a
/// client can find the saga by trace. A malformed header is ignored, never an error.
/// With an exporter on, the request is a server span ("POST /orders", by route pattern) and
/// that span is the context.
struct TraceContextMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let parent = request.headers[.traceparent].flatMap(TraceParent.init)
        // Probes and scrapes are no one's saga: no span for them.
        guard Telemetry.isExporting, request.uri.path != "/healthz", request.uri.path != "/metrics" else {
            let trace = parent?.child() ?? .root()
            var response = try await TraceParent.$current.withValue(trace) { try await next(request, context) }
            response.headers.nameTrace(trace)
            return response
        }
        let method = HTTPRequestSeries.methodLabel(request.method)
        let span = Telemetry.start(method, kind: .server, parent: parent, attributes: ["http.request.method": .string(method)])
        defer { span.end() }
        let trace = Telemetry.traceParent(of: span) ?? parent?.child() ?? .root()
        do {
            var response = try await TraceParent.$current.withValue(trace) { try await next(request, context) }
            finish(span, context, status: response.status.code)
            response.headers.nameTrace(trace)
            return response
        } catch {
            finish(span, context, status: (error as? any HTTPResponseError)?.status.code ?? 500)
            span.recordError(error)
            throw error
        }
    }

    /// The span's name and route once routing has matched (OpenTelemetry HTTP conventions).
    private func finish(_ span: any Span, _ context: Context, status: Int) {
        if let route = context.endpointPath {
            span.operationName = "\(span.operationName) \(route)"
            span.attributes["http.route"] = route
        }
        span.attributes["http.response.status_code"] = status
        if status >= 500 { span.setStatus(SpanStatus(code: .error)) }
    }
}

extension HTTPField.Name {
    static let traceparent = Self("traceparent")!
}

extension HTTPFields {
    /// Names `trace` as the response's context, unless the handler named one (a retry answered
    /// from its Idempotency-Key names the first request's).
    fileprivate mutating func nameTrace(_ trace: TraceParent) {
        if self[.traceresponse] == nil { self[.traceresponse] = trace.text }
    }
}
