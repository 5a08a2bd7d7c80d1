import Foundation
import Hummingbird

/// The API's OpenAPI 3.1 document. `openapi.json` beside this file is its one copy: embedded
/// in the binary when it is built (`.embedInCode`), served at `GET /openapi.json`, compared
/// with the router's routes by the tests, and run against a live process by `scripts/check-api`
/// (schemathesis).
public enum OpenAPIDocument {
    public static let path = "/openapi.json"

    /// The document as it is in the repository.
    public static var bytes: Data { Data(PackageResources.openapi_json) }

    static let methods: Set<String> = ["get", "put", "post", "delete", "options", "head", "patch", "trace"]

    /// "GET /orders/{orderId}": one per operation of `document`.
    public static func operations(in document: Data = bytes) throws -> Set<String> {
        let paths = try paths(of: try object(document))
        return Set(
            paths.flatMap { path, item in
                item.keys.filter(methods.contains).map { "\($0.uppercased()) \(path)" }
            })
    }

    /// The document with only the operations in `served` ("GET /orders/{orderId}"), for a
    /// process that runs some of the services: the bytes as they are when it serves them all.
    public static func restricted(to served: Set<String>, document: Data = bytes) throws -> Data {
        guard try !operations(in: document).isSubset(of: served) else { return document }
        var root = try object(document)
        var kept: [String: Any] = [:]
        for (path, item) in try paths(of: root) {
            let item = item.filter { key, _ in !methods.contains(key) || served.contains("\(key.uppercased()) \(path)") }
            if item.keys.contains(where: methods.contains) { kept[path] = item }
        }
        root["paths"] = kept
        return try JSONSerialization.data(withJSONObject: root, options: [.sortedKeys, .withoutEscapingSlashes])
    }

    /// Registers `GET /openapi.json` with the document restricted to the routes `routes` holds
    /// and this one; call it after every other route, then `routes` holds this one too.
    public static func register<Context>(on router: Router<Context>, routes: RouteTable) throws {
        let document = try restricted(to: Set(routes.all.map(\.description) + ["GET \(path)"]))
        router.get(RouterPath(path)) { _, _ -> Response in JSON.response(bytes: document, status: .ok) }
        routes.record(router)
    }

    private static func object(_ document: Data) throws -> [String: Any] {
        guard let root = try JSONSerialization.jsonObject(with: document) as? [String: Any] else { throw Malformed() }
        return root
    }

    private static func paths(of root: [String: Any]) throws -> [String: [String: Any]] {
        guard let paths = root["paths"] as? [String: [String: Any]] else { throw Malformed() }
        return paths
    }

    struct Malformed: Error, CustomStringConvertible {
        var description: String { "openapi.json has no paths object" }
    }
}
