import CommerceAPI
import CommerceAuth
import Hummingbird
import HummingbirdAuth

/// How `serve` knows who a request acts as.
public enum Authentication: Sendable {
    /// Bearer JWTs, checked by `verifier`; a protected route without a good one is a 401.
    case tokens(TokenVerifier)
    /// No tokens: every request acts as an operator, as the API was before tokens. For local use.
    case none
}

/// Sets the request's identity from its `Authorization: Bearer` token, or answers 401 with
/// RFC 6750's challenge. /healthz, /metrics and /openapi.json stay open: probes, scrapers and
/// API tools carry no token. What an identity may do is each route's to say (`CommerceContext`).
struct BearerTokenMiddleware: AuthenticatorMiddleware {
    typealias Context = CommerceContext
    static let openPaths: Set<String> = ["/healthz", "/metrics", "/openapi.json"]
    let authentication: Authentication

    func authenticate(request: Request, context: CommerceContext) async throws -> Identity? {
        guard !Self.openPaths.contains(request.uri.path) else { return nil }
        guard case .tokens(let verifier) = authentication else { return .operator("anonymous") }
        guard let header = request.headers[.authorization] else { throw APIError.unauthorized("this request needs a bearer token") }
        // Only the Bearer scheme (case-insensitive, RFC 9110 §11.1); HTTPFields.bearer is case-sensitive.
        guard header.count > 7, header.prefix(7).lowercased() == "bearer " else {
            throw APIError.unauthorized("the Authorization header is not 'Bearer <token>'", invalidToken: true)
        }
        do {
            return try await verifier.identity(of: String(header.dropFirst(7).drop(while: { $0 == " " })))
        } catch {
            throw APIError.unauthorized(error.description, invalidToken: true)
        }
    }
}
