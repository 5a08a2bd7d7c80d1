import HTTPTypes
import Hummingbird
import Synchronization

/// What a router serves, method and path, filled in once every route is registered (the
/// middleware that answers 405 is added before the routes it needs to know).
public final class RouteTable: Sendable {
    public struct Route: Sendable, Hashable, CustomStringConvertible {
        public let method: HTTPRequest.Method
        /// "/users/{userId}/cart", as the OpenAPI document writes it.
        public let path: String
        public var description: String { "\(method.rawValue) \(path)" }
    }

    private let routes = Mutex<[Route]>([])

    public init() {}

    public var all: [Route] { routes.withLock { $0 } }

    /// Takes the routes of `router` as they are now.
    public func record<Context>(_ router: Router<Context>) {
        let found = router.routes.map { Route(method: $0.method, path: $0.path.description) }
        routes.withLock { $0 = found }
    }

    /// The methods of the routes whose path matches `path` (a `{name}` segment matches any
    /// one segment; empty segments are skipped, as the router does), sorted, with HEAD where
    /// there is GET (the router answers it).
    public func methods(servingPath path: String) -> [HTTPRequest.Method] {
        let segments = path.split(separator: "/")
        let methods = all.filter { route in
            let pattern = route.path.split(separator: "/")
            return pattern.count == segments.count
                && zip(pattern, segments).allSatisfy { $0.first == "{" && $0.last == "}" || $0 == $1 }
        }.map(\.method)
        return Set(methods.contains(.get) ? methods + [.head] : methods).sorted { $0.rawValue < $1.rawValue }
    }
}
