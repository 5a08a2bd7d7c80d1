import Foundation
import JWTKit
import Synchronization

/// Checks a bearer token: its signature by one of the configured keys (chosen by `kid`), its
/// time claims, its issuer and its audience; and names the identity it carries.
public struct TokenVerifier: Sendable {
    let keys: JWTKeyCollection
    /// The algorithm of each configured key, by `kid`: a token naming another key, or another
    /// algorithm for its key, is refused before any check (RFC 8725 §3.1). jwt-kit alone would
    /// let a JWK without `alg` take the algorithm of the first token naming it, even a forged one.
    let algorithms: [String: String]
    public let issuer: String
    public let audience: String
    /// Tokens already checked, so a client's next request with the same token costs a lookup,
    /// not an ECDSA verification (about 0.1 ms of CPU).
    let verified = VerifiedTokens()

    /// Why a token was refused, in one line fit for a 401's `error_description`.
    public struct Refusal: Error, CustomStringConvertible, Sendable {
        public let description: String
        init(_ description: String) { self.description = description }
    }

    /// Why the keys could not be loaded, naming the file.
    public struct KeyFileError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Where a key comes from: a file, or a JWKS document given inline (an environment variable,
    /// as a container platform passes a ConfigMap).
    public enum KeySource: Sendable {
        case file(String)
        case jwks(String)
    }

    /// - Parameter keyFiles: each a PEM public key (ECDSA P-256, for ES256; its `kid` is its
    ///   RFC 7638 thumbprint, as `commerce token` names it) or a JWKS document (JSON; each key's own `kid`), so
    ///   keys can be rotated by serving old and new side by side.
    public init(keyFiles: [String], issuer: String, audience: String) async throws(KeyFileError) {
        try await self.init(keys: keyFiles.map(KeySource.file), issuer: issuer, audience: audience)
    }

    public init(keys sources: [KeySource], issuer: String, audience: String) async throws(KeyFileError) {
        guard !sources.isEmpty else { throw KeyFileError(description: "no token key file given") }
        let keys = JWTKeyCollection()
        var algorithms: [String: String] = [:]
        for source in sources {
            let text: String
            let name: String
            switch source {
            case .file(let path):
                guard let data = FileManager.default.contents(atPath: path), let read = String(data: data, encoding: .utf8) else {
                    throw KeyFileError(description: "cannot read the token key file \(path)")
                }
                (text, name) = (read, "the token key file \(path)")
            case .jwks(let document): (text, name) = (document, "the inline JWKS")
            }
            do {
                if text.trimmingCharacters(in: .whitespacesAndNewlines).hasPrefix("{") {
                    let jwks = try JSONDecoder().decode(JWKS.self, from: Data(text.utf8))
                    guard !jwks.keys.isEmpty else { throw KeyFileError(description: "\(name) is a JWKS that holds no key") }
                    for key in jwks.keys {
                        guard let kid = key.keyIdentifier?.string else { throw KeyFileError(description: "\(name) has a key without a kid") }
                        guard let algorithm = Self.algorithm(of: key) else {
                            throw KeyFileError(description: "\(name): key '\(kid)' has no alg, and its type does not name one")
                        }
                        var pinned = key
                        pinned.algorithm = JWK.Algorithm(rawValue: algorithm)
                        try await keys.add(jwk: pinned)
                        algorithms[kid] = algorithm
                    }
                } else if case .file = source {
                    let key = try ES256PublicKey(pem: text)
                    let kid = try KeyThumbprint.of(key)
                    await keys.add(ecdsa: key, kid: JWKIdentifier(string: kid))
                    algorithms[kid] = "ES256"
                } else {
                    throw KeyFileError(description: "\(name) is not a JSON document")
                }
            } catch let error as KeyFileError {
                throw error
            } catch {
                throw KeyFileError(description: "\(name) is neither a JWKS nor an ECDSA P-256 public key in PEM: \(error)")
            }
        }
        self.keys = keys
        self.algorithms = algorithms
        self.issuer = issuer
        self.audience = audience
    }

    /// The identity `token` carries, or why it is refused.
    public func identity(of token: String) async throws(Refusal) -> Identity {
        // Bigger than any honest token by far; refused before any decoding.
        guard token.utf8.count <= 8_192 else { throw Refusal("the token is longer than 8192 bytes") }
        if let identity = verified.identity(of: token) { return identity }
        try checkHeader(of: token)
        let claims: TokenClaims
        do {
            claims = try await keys.verify(token, as: TokenClaims.self)
        } catch let error as JWTError {
            throw Refusal(Self.reason(error))
        } catch {
            throw Refusal("the token is malformed")
        }
        guard claims.iss.value == issuer else { throw Refusal("the token's issuer is not '\(issuer)'") }
        guard claims.aud.value.contains(audience) else { throw Refusal("the token's audience does not include '\(audience)'") }
        let identity = try claims.identity()
        verified.keep(token, identity, from: claims.nbf?.value, until: claims.exp.value)
        return identity
    }

    /// The header names a configured key (by `kid`; without one only when a single key is
    /// configured) and that key's own algorithm, and no critical extension this code would ignore.
    func checkHeader(of token: String) throws(Refusal) {
        struct Header: Decodable {
            let alg: String?
            let kid: String?
            let crit: [String]?
        }
        guard let segment = token.split(separator: ".", maxSplits: 1).first, let data = Base64URL.decode(segment),
            let header = try? JSONDecoder().decode(Header.self, from: data)
        else { throw Refusal("the token is malformed") }
        guard header.crit == nil else { throw Refusal("the token has critical header extensions ('crit'), which are not supported") }
        let expected: String?
        if let kid = header.kid {
            guard let known = algorithms[kid] else { throw Refusal("the token's key id '\(kid.prefix(64))' is not a configured key") }
            expected = known
        } else {
            guard algorithms.count == 1 else { throw Refusal("the token names no key id ('kid'), and several keys are configured") }
            expected = algorithms.values.first
        }
        guard let alg = header.alg, alg == expected else {
            throw Refusal("the token's algorithm '\((header.alg ?? "").prefix(16))' is not its key's (\(expected ?? "none"))")
        }
    }

    /// A JWK's algorithm: its own `alg`, else the one its type and curve imply.
    static func algorithm(of key: JWK) -> String? {
        if let alg = key.algorithm?.rawValue { return alg }
        switch (key.keyType.rawValue, key.curve?.rawValue) {
        case ("EC", "P-256"): return "ES256"
        case ("EC", "P-384"): return "ES384"
        case ("EC", "P-521"): return "ES512"
        case ("RSA", _): return "RS256"
        case ("OKP", "Ed25519"): return "EdDSA"
        default: return nil
        }
    }

    static func reason(_ error: JWTError) -> String {
        switch error.errorType {
        case .claimVerificationFailure:
            error.failedClaim is ExpirationClaim
                ? "the token has expired" : error.failedClaim is NotBeforeClaim ? "the token is not valid yet" : "a claim does not verify"
        case .signatureVerificationFailed: "the token's signature does not verify"
        case .missingKIDHeader, .unknownKID: "the token's key id is not a configured key"
        default: "the token is malformed or lacks a required claim (sub, iss, aud, exp)"
        }
    }
}

/// base64url without padding (RFC 7515 §2), as JWT segments and key thumbprints are written.
enum Base64URL {
    static func encode(_ data: Data) -> String {
        data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func decode(_ text: Substring) -> Data? {
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
        return Data(base64Encoded: base64)
    }
}
