import Foundation
import HTTPTypes
import Hummingbird

/// JSON in and out, with decoding errors that name the field.
public enum JSON {
    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return e
    }()

    public static func response<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) throws -> Response {
        response(bytes: try bytes(value), status: status)
    }

    static func response(bytes: Data, status: HTTPResponse.Status) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    /// The body of a JSON answer: sorted keys, one line.
    static func bytes<T: Encodable>(_ value: T) throws -> Data {
        var bytes = try encoder.encode(value)
        bytes.append(UInt8(ascii: "\n"))
        return bytes
    }

    /// Decodes the request body as `T`; any problem is a 400 that says what is wrong.
    public static func decode<T: Decodable>(_ type: T.Type, from request: Request) async throws -> T {
        var request = request
        let body: ByteBuffer
        do { body = try await request.collectBody(upTo: 64 * 1024) } catch {
            throw APIError.badRequest("request body too large (limit 64 KiB)")
        }
        guard body.readableBytes > 0 else { throw APIError.badRequest("request body must be a JSON object") }
        do {
            return try JSONDecoder().decode(T.self, from: Data(body.readableBytesView))
        } catch let error as DecodingError {
            throw APIError.badRequest(describe(error))
        }
    }

    static func describe(_ error: DecodingError) -> String {
        func path(_ keys: [any CodingKey]) -> String {
            keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".").replacingOccurrences(of: ".[", with: "[")
        }
        switch error {
        case .keyNotFound(let key, let ctx): return "missing field '\(path(ctx.codingPath + [key]))'"
        case .typeMismatch(let type, let ctx): return "field '\(path(ctx.codingPath))' must be \(typeName(type))"
        case .valueNotFound(let type, let ctx): return "field '\(path(ctx.codingPath))' must be \(typeName(type)), not null"
        case .dataCorrupted(let ctx):
            return ctx.codingPath.isEmpty ? "request body is not valid JSON" : "field '\(path(ctx.codingPath))' is invalid"
        @unknown default: return "request body is invalid"
        }
    }

    private static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is Int64.Type, is Int.Type: "an integer"
        case is String.Type: "a string"
        case is Bool.Type: "true or false"
        default: type is any Collection.Type ? "an array" : "an object"
        }
    }
}

public extension RequestContext {
    /// A positive integer path parameter, else a 400 naming it.
    func id(_ name: String) throws -> Int64 {
        guard let raw = parameters.get(name), let value = Int64(raw), value > 0 else {
            throw APIError.badRequest("\(name) must be a positive integer, got '\(parameters.get(name) ?? "")'")
        }
        return value
    }
}
