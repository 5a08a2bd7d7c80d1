import Crypto
import Foundation
import HTTPTypes
import Hummingbird

/// A client's `Idempotency-Key` (draft-ietf-httpapi-idempotency-key-header), bound to the
/// request it came with: the same key with another method, path or body is refused (422).
public struct IdempotencyKey: Sendable {
    /// Longer keys are refused (400), never ignored: a key the server silently dropped would
    /// let a retry create everything twice. UUIDs and ULIDs fit many times over.
    public static let maxLength = 255
    static let field = HTTPField.Name("Idempotency-Key")!

    public let value: String
    /// "POST /users/1/charge".
    public let request: String
    /// SHA-256 of the request line and of the body as the service reads it (JSON with sorted
    /// keys), so spacing, key order or unknown fields in a retried body do not matter.
    public let fingerprint: Data

    /// The key the request carries, or nil without one; a 400 when it is malformed, empty,
    /// over `maxLength` or given twice.
    static func value(in headers: HTTPFields) throws -> String? {
        let values = headers[values: field]
        guard let raw = values.first else { return nil }
        guard values.count == 1 else { throw APIError.badRequest("Idempotency-Key must be given once, got \(values.count)") }
        let key = try unquote(raw.trimmingCharacters(in: .whitespaces))
        guard !key.isEmpty else { throw APIError.badRequest("Idempotency-Key must not be empty") }
        guard key.utf8.count <= maxLength else {
            throw APIError.badRequest("Idempotency-Key must be at most \(maxLength) characters, got \(key.utf8.count)")
        }
        return key
    }

    /// The draft's form is a structured-field string (`"8e03978e-..."`, RFC 8941 §3.3.3); a
    /// bare value is taken as it is, as most clients send it.
    static func unquote(_ raw: String) throws -> String {
        let printable: ClosedRange<UInt8> = 0x20...0x7E
        guard raw.first == "\"" else {
            guard raw.utf8.allSatisfy(printable.contains) else { throw APIError.badRequest("Idempotency-Key must be printable ASCII") }
            return raw
        }
        // Each case that takes a byte continues; anything else leaves the loop as malformed.
        var key: [UInt8] = []
        var bytes = raw.utf8.dropFirst().makeIterator()
        while let byte = bytes.next() {
            switch byte {
            case UInt8(ascii: "\\"):
                guard let escaped = bytes.next(), escaped == UInt8(ascii: "\"") || escaped == UInt8(ascii: "\\") else { break }
                key.append(escaped)
                continue
            case UInt8(ascii: "\""):
                guard bytes.next() == nil else { break }
                return String(decoding: key, as: UTF8.self)
            case printable:
                key.append(byte)
                continue
            default: break
            }
            break
        }
        throw APIError.badRequest("Idempotency-Key must be a token or a quoted string of printable ASCII, got \(raw.prefix(40))")
    }
}

/// A POST as a service acts on it: its decoded JSON body and its Idempotency-Key, if any.
public struct Post<Body: Codable & Sendable>: Sendable {
    public let body: Body
    public let key: IdempotencyKey?

    public init(_ type: Body.Type, from request: Request) async throws {
        let value = try IdempotencyKey.value(in: request.headers)
        let body = try await JSON.decode(type, from: request)
        self.body = body
        guard let value else {
            key = nil
            return
        }
        let line = "\(request.method) \(request.uri.path)"
        var hash = SHA256()
        hash.update(data: Data((line + "\n").utf8))
        hash.update(data: try JSON.encoder.encode(body))
        key = IdempotencyKey(value: value, request: line, fingerprint: Data(hash.finalize()))
    }
}
