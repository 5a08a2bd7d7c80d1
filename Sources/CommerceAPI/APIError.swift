import Foundation
import HTTPTypes
import Hummingbird
import SQLStore

/// Every API error is JSON: `{"error": {"code": "...", "message": "..."}}` with a 4xx for
/// bad input; a 500 only for a bug or a broken disk.
public struct APIError: HTTPResponseError, CustomStringConvertible {
    public let status: HTTPResponse.Status
    public let code: String
    public let message: String
    /// Sent with the error: `Allow` with a 405, `Retry-After` with a 503.
    public var headers: HTTPFields

    public init(_ status: HTTPResponse.Status, code: String, _ message: String, headers: HTTPFields = [:]) {
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
    }

    public static func badRequest(_ message: String) -> APIError { APIError(.badRequest, code: "bad_request", message) }
    public static func notFound(_ message: String) -> APIError { APIError(.notFound, code: "not_found", message) }
    /// 401 with RFC 6750's challenge: no token (no error code, as §3.1 asks), or a bad one.
    public static func unauthorized(_ message: String, invalidToken: Bool = false) -> APIError {
        let challenge =
            invalidToken ? #"Bearer realm="commerce", error="invalid_token", error_description="\#(quoted(message))""# : #"Bearer realm="commerce""#
        return APIError(.unauthorized, code: invalidToken ? "invalid_token" : "unauthorized", message, headers: [.wwwAuthenticate: challenge])
    }
    /// 403 with RFC 6750's `insufficient_scope`: a good token that may not do this.
    public static func forbidden(_ message: String) -> APIError {
        APIError(.forbidden, code: "forbidden", message, headers: [.wwwAuthenticate: #"Bearer realm="commerce", error="insufficient_scope""#])
    }
    /// A quoted-string's content (RFC 9110 §5.6.4): no quote, backslash or control character.
    static func quoted(_ text: String) -> String {
        String(text.unicodeScalars.filter { $0.value >= 0x20 && $0.value < 0x7F && $0 != "\\" && $0 != "\"" }.map(Character.init))
    }
    public static func conflict(_ code: String, _ message: String) -> APIError { APIError(.conflict, code: code, message) }
    public static func keyReused(_ key: IdempotencyKey, firstUsedFor request: String) -> APIError {
        APIError(
            .unprocessableContent, code: "idempotency_key_reused",
            "Idempotency-Key '\(key.value)' was first used for \(request == key.request ? "\(request) with another body" : request); a new request needs a new key"
        )
    }

    public var description: String { "\(status.code) \(code): \(message)" }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var response = JSON.response(bytes: try bytes(), status: status)
        response.headers.append(contentsOf: headers)
        return response
    }

    func bytes() throws -> Data { try JSON.bytes(Body(error: .init(code: code, message: message))) }

    struct Body: Encodable {
        struct Detail: Encodable {
            let code: String
            let message: String
        }
        let error: Detail
    }
}

/// Turns whatever a route throws into the JSON error shape; unexpected errors are logged. A
/// path that `routes` serves with other methods is a 405 naming them in `Allow` (RFC 9110
/// §15.5.6), not a 404.
public struct APIErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    let routes: RouteTable?

    public init(routes: RouteTable? = nil) {
        self.routes = routes
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as APIError {
            return try error.response(from: request, context: context)
        } catch let error as HTTPError where error.status == .notFound && error.body == nil {
            // The router's own answer when no route has this method and path.
            let allowed = routes?.methods(servingPath: request.uri.path) ?? []
            guard !allowed.isEmpty else {
                return try APIError.notFound("no route \(request.method) \(request.uri.path)").response(from: request, context: context)
            }
            let list = allowed.map(\.rawValue).joined(separator: ", ")
            var refusal = APIError(
                .methodNotAllowed, code: "method_not_allowed", "\(request.method) is not allowed on \(request.uri.path); allowed: \(list)")
            refusal.headers[.allow] = list
            return try refusal.response(from: request, context: context)
        } catch let error as HTTPError {
            let code = error.status == .notFound ? "not_found" : error.status.code < 500 ? "bad_request" : "internal"
            let message = error.body ?? (error.status == .notFound ? "no route \(request.method) \(request.uri.path)" : error.status.reasonPhrase)
            return try APIError(error.status, code: code, message).response(from: request, context: context)
        } catch let error as SQLError where error.isTransient && !error.mayHaveCommitted {
            // The service's shared database is unreachable for now: the client may retry (with its
            // Idempotency-Key); where the database is and who logs in stays in the log.
            context.logger.warning("database unreachable", metadata: ["path": "\(request.uri.path)", "error": "\(error)"])
            var refusal = APIError(
                .serviceUnavailable, code: "database_unavailable", "the service's database cannot be reached or is busy; retry shortly")
            refusal.headers[.retryAfter] = "1"
            return try refusal.response(from: request, context: context)
        } catch {
            context.logger.error("request failed", metadata: ["path": "\(request.uri.path)", "error": "\(error)"])
            return try APIError(.internalServerError, code: "internal", "\(error)").response(from: request, context: context)
        }
    }
}
