import CommerceAuth
import Hummingbird
import HummingbirdAuth

/// A request's context on the commerce API: Hummingbird's core, and who the request acts as
/// (set by the bearer-token middleware; nil only on the open paths: /healthz, /metrics,
/// /openapi.json).
public struct CommerceContext: AuthRequestContext, RequestContext {
    public var coreContext: CoreRequestContextStorage
    public var identity: Identity?

    public init(source: Source) {
        coreContext = .init(source: source)
    }
}

extension CommerceContext {
    /// The caller, or a 401: a protected route reached without an identity is a wiring bug,
    /// refused rather than served open.
    public func caller() throws -> Identity {
        guard let identity else { throw APIError.unauthorized("this request needs a bearer token") }
        return identity
    }

    /// 403 unless the caller is an operator: products and charges are theirs to manage.
    public func requireOperator(to action: String) throws {
        let caller = try caller()
        guard caller.isOperator else { throw APIError.forbidden("\(caller) may not \(action): that needs an operator's token") }
    }

    /// 403 unless the caller is user `id` or an operator: a user acts only for themself.
    public func requireActing(for id: Int64) throws {
        let caller = try caller()
        guard caller.mayActFor(user: id) else { throw APIError.forbidden("\(caller) may not act for user \(id)") }
    }

}
