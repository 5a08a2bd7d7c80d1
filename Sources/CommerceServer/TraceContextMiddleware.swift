import Events
import HTTPTypes
import Hummingbird

/// Opens the trace a saga's events carry: the request's W3C `traceparent` when it sends a
/// well-formed one (its next hop), a new trace otherwise. Handlers run with it as
/// `TraceParent.current`, which `ServiceNode.transaction` stamps on the events it writes; the
/// response names it in `traceresponse` (the W3C Trace Context level 3 draft's header), so a
/// client can find the saga by trace. A malformed header is ignored, never an error.
struct TraceContextMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let trace = request.headers[.traceparent].flatMap(TraceParent.init)?.child() ?? .root()
        var response = try await TraceParent.$current.withValue(trace) { try await next(request, context) }
        response.headers[.traceresponse] = trace.text
        return response
    }
}

extension HTTPField.Name {
    static let traceparent = Self("traceparent")!
    static let traceresponse = Self("traceresponse")!
}
