import Crypto
import Foundation
import JWTKit

/// A public key's RFC 7638 thumbprint: the key id of a PEM key, on both sides. It follows from
/// the key alone, so `serve` (given the public half) and `commerce token` (given the private
/// half, from a file or the environment) name the same key without agreeing on file names.
enum KeyThumbprint {
    static func of(_ key: ES256PublicKey) throws(TokenVerifier.KeyFileError) -> String {
        guard let point = key.parameters else { throw TokenVerifier.KeyFileError(description: "the key has no public point") }
        // The required members only, in lexicographic order, no whitespace (RFC 7638 §3.2).
        let canonical = #"{"crv":"P-256","kty":"EC","x":"\#(point.x)","y":"\#(point.y)"}"#
        return Base64URL.encode(Data(SHA256.hash(data: Data(canonical.utf8))))
    }
}
