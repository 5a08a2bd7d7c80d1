import CommerceAPI
import CommerceServer
import Foundation
import Hummingbird
import SQLiteStore
import ServiceRuntime
import TestSupport
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The OpenAPI document (`Sources/CommerceAPI/openapi.json`) and the router cannot drift apart:
/// every route is an operation of the document and every operation a route. What the routes
/// answer is checked against the document by schemathesis (`scripts/check-api`).
@Suite("API description")
struct APIDescriptionTests {
    /// The router of `commerce serve all`, built by the code `serve` runs, with its services'
    /// databases in a temporary folder (no broker needed: nothing is served).
    static func router(services: [String] = ["user", "product", "order", "payment"]) async throws -> (Router<CommerceContext>, String) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("routes-\(UUID().uuidString.prefix(8))").path
        let keys = KeySpace()
        var nodes: [ServiceNode] = []
        for name in services {
            let service = try ServiceCatalog(named: name).makeService()
            nodes.append(try await ServiceNode(service: service, store: SQLiteStore(path: "\(directory)/\(name).sqlite"), keySpace: keys))
        }
        return (try CommerceRouter.make(nodes: nodes, authentication: .none) { nil }, directory)
    }

    static func document() throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: OpenAPIDocument.bytes) as? [String: Any])
    }

    @Test func everyRouteIsAnOperationOfTheDocumentAndEveryOperationARoute() async throws {
        let (router, directory) = try await Self.router()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let routes = Set(router.routes.map { "\($0.method.rawValue) \($0.path)" })
        let operations = try OpenAPIDocument.operations()
        #expect(routes.count == 13, "\(routes.sorted())")
        #expect(routes.subtracting(operations).isEmpty, "routes the document does not describe: \(routes.subtracting(operations).sorted())")
        #expect(operations.subtracting(routes).isEmpty, "operations no route serves: \(operations.subtracting(routes).sorted())")
    }

    /// The one copy: what the binary embeds and serves is the file in the repository.
    @Test func theEmbeddedDocumentIsTheRepositorysFile() throws {
        let file = try Data(contentsOf: packageRoot.appendingPathComponent("Sources/CommerceAPI/openapi.json"))
        #expect(file == OpenAPIDocument.bytes)
        #expect(try Self.document()["openapi"] as? String == "3.1.0")
    }

    /// Every POST takes the optional Idempotency-Key and names its 400 and 422; every route
    /// names its 400 (a path id or a body can be bad) and a 500 in the JSON error shape.
    @Test func everyPostDocumentsTheIdempotencyKeyAndEveryErrorIsTheJSONShape() throws {
        let document = try Self.document()
        let paths = try #require(document["paths"] as? [String: [String: Any]])
        let components = try #require(document["components"] as? [String: Any])
        let key = try #require((components["parameters"] as? [String: Any])?["IdempotencyKey"] as? [String: Any])
        #expect(key["in"] as? String == "header" && key["name"] as? String == "Idempotency-Key" && key["required"] as? Bool == false)
        let responses = try #require(components["responses"] as? [String: [String: Any]])
        for (name, response) in responses {
            let schema = ((response["content"] as? [String: Any])?["application/json"] as? [String: Any])?["schema"] as? [String: Any]
            #expect(
                schema?["$ref"] as? String
                    == "#/components/schemas/\(name == "BadRequest" ? "BadRequestError" : name == "NotFound" ? "NotFoundError" : name == "InternalError" ? "InternalServerError" : "\(name)Error")",
                "\(name) is the JSON error shape")
        }
        var posts = 0
        for (path, item) in paths where !["/healthz", "/metrics", OpenAPIDocument.path].contains(path) {
            for (method, value) in item {
                let operation = try #require(value as? [String: Any])
                let codes = Set((operation["responses"] as? [String: Any] ?? [:]).keys)
                #expect(codes.isSuperset(of: ["400", "500"]), "\(method) \(path): \(codes.sorted())")
                let parameters = (operation["parameters"] as? [[String: Any]] ?? []).compactMap { $0["$ref"] as? String }
                guard method == "post" else { continue }
                posts += 1
                #expect(parameters.contains("#/components/parameters/IdempotencyKey"), "\(method) \(path)")
                #expect(codes.contains("422"), "\(method) \(path): \(codes.sorted())")
                #expect((operation["requestBody"] as? [String: Any])?["required"] as? Bool == true, "\(method) \(path)")
            }
        }
        #expect(posts == 5)
    }

    /// `commerce serve user` describes the user service's routes only.
    @Test func aProcessRunningOneServiceDescribesOnlyItsRoutes() async throws {
        let (router, directory) = try await Self.router(services: ["user"])
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let routes = Set(router.routes.map { "\($0.method.rawValue) \($0.path)" })
        let document = try OpenAPIDocument.restricted(to: routes)
        let served = try OpenAPIDocument.operations(in: document)
        #expect(served == routes, "\(served.sorted())")
        #expect(String(decoding: document, as: UTF8.self).contains(#""maximum":9223372036854775807"#), "64-bit bounds kept exactly")
        #expect(served == ["POST /users/{userId}/charge", "GET /users/{userId}/balance", "GET /healthz", "GET /metrics", "GET /openapi.json"])
    }

    @Test func theProcessServesTheDocument() async throws {
        let s = try await CommerceScenario()
        let answer = try await s.response("GET", "/openapi.json")
        #expect(answer.status == 200 && answer.headers["content-type"] == "application/json")
        #expect(answer.body == OpenAPIDocument.bytes, "serve all answers the repository's document as it is")
        await s.finish()
    }

    /// RFC 9110 §15.5.6: a path served with other methods is a 405 listing them in `Allow`;
    /// found by schemathesis (`TRACE /orders` answered 404).
    @Test func anotherMethodOnAKnownPathIsA405ThatNamesTheAllowedOnes() async throws {
        let s = try await CommerceScenario()
        for (method, path, allowed) in [
            ("TRACE", "/orders", "POST"), ("PUT", "/users/1/cart", "GET, HEAD, POST"), ("DELETE", "/products/7", "GET, HEAD"),
            ("GET", "/payments", "POST"), ("POST", "/healthz", "GET, HEAD"), ("PATCH", "/openapi.json", "GET, HEAD"),
        ] {
            let answer = try await s.response(method, path)
            let error = (try? JSONSerialization.jsonObject(with: answer.body)) as? [String: [String: String]]
            #expect(
                answer.status == 405 && answer.headers["allow"] == allowed && error?["error"]?["code"] == "method_not_allowed",
                "\(method) \(path): \(answer.status) \(answer.headers) \(String(decoding: answer.body, as: UTF8.self))")
        }
        let unknown = try await s.response("GET", "/nothing/here")
        #expect(unknown.status == 404 && errorDetail(unknown)?["code"] == "not_found", "\(unknown.status)")
        #expect(try await s.response("GET", "/users/1/charge/more").status == 404)
        await s.finish()
    }

    /// RFC 9110 §9.3.2: HEAD answers as GET would, without the body.
    @Test func headAnswersAsGetWithoutTheBody() async throws {
        let s = try await CommerceScenario()
        let product = try await s.call("POST", "/products", ["name": "mug", "price": 100, "stock": 5])
        #expect(product.status == 201)
        let found = try await s.response("HEAD", "/products/1")
        #expect(found.status == 200 && found.body.isEmpty && found.headers["content-type"] == "application/json", "\(found)")
        #expect(try await s.response("HEAD", "/products/2").status == 404)
        #expect(try await s.response("HEAD", "/orders/abc").status == 400)
        #expect(try await s.response("HEAD", "/healthz").status == 200)
        #expect(try await s.response("HEAD", "/orders").status == 405)
        await s.finish()
    }

    /// The document's rule for a product name is JSON Schema's: 1-200 code points (not
    /// grapheme clusters) with one that is not ECMAScript whitespace.
    @Test func aProductNameIsCountedInCodePointsAndMustNotBeOnlyWhitespace() async throws {
        let s = try await CommerceScenario()
        let combining = String(repeating: "e\u{301}", count: 101)  // 202 code points, 101 characters
        for name in [combining, "\n", "\t\r\n", "\u{3000}", "\u{FEFF}", " \u{2028} "] {
            let answer = try await s.call("POST", "/products", ["name": name, "price": 1, "stock": 1])
            #expect(answer.status == 400, "\(name.unicodeScalars.map { String($0.value, radix: 16) }): \(answer)")
        }
        for name in [String(repeating: "\u{E9}", count: 200), "\u{1F}", "mug", " x "] {
            let answer = try await s.call("POST", "/products", ["name": name, "price": 1, "stock": 1])
            #expect(answer.status == 201 && answer.json["name"] as? String == name, "\(name.unicodeScalars.count) code points: \(answer)")
        }
        await s.finish()
    }

    private func errorDetail(_ response: (status: Int, headers: [String: String], body: Data)) -> [String: String]? {
        ((try? JSONSerialization.jsonObject(with: response.body)) as? [String: [String: String]])?["error"]
    }
}

extension CommerceScenario {
    /// Status, headers and bytes, for any method.
    func response(_ method: String, _ path: String) async throws -> (status: Int, headers: [String: String], body: Data) {
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
        request.httpMethod = method
        request.setValue("Bearer \(try await TestTokens.shared.token(.operator))", forHTTPHeaderField: "Authorization")
        let (data, response) = try await URLSession.shared.data(for: request)
        let http = response as? HTTPURLResponse
        let headers = (http?.allHeaderFields ?? [:]).reduce(into: [String: String]()) { $0["\($1.key)".lowercased()] = "\($1.value)" }
        return (http?.statusCode ?? 0, headers, data)
    }
}
