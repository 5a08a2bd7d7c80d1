import Foundation
import JWTKit

/// Makes tokens with a development signing key: for `commerce token`, `commerce simulate` and
/// the tests. Production tokens come from the real issuer; this never runs inside `serve`.
public struct TokenMinter: Sendable {
    let keys: JWTKeyCollection
    let publicKey: ES256PublicKey
    public let kid: String
    public let issuer: String
    public let audience: String

    /// - Parameter signingKeyFile: an ECDSA P-256 private key in PEM.
    public init(signingKeyFile path: String, kid: String? = nil, issuer: String, audience: String) async throws(TokenVerifier.KeyFileError) {
        guard let pem = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw .init(description: "cannot read the token signing key file \(path)")
        }
        try await self.init(signingKey: pem, named: "the token signing key file \(path)", kid: kid, issuer: issuer, audience: audience)
    }

    /// - Parameters:
    ///   - signingKey: the PEM itself (from a file, or an environment variable).
    ///   - kid: the key id the tokens name; by default the public key's RFC 7638 thumbprint,
    ///     which is the id `serve` gives the same key's public half in PEM.
    public init(
        signingKey pem: String, named name: String, kid: String? = nil, issuer: String, audience: String
    )
        async throws(TokenVerifier.KeyFileError)
    {
        let key: ES256PrivateKey
        do { key = try ES256PrivateKey(pem: pem) } catch { throw .init(description: "\(name) is not an ECDSA P-256 private key in PEM") }
        let thumbprint = try KeyThumbprint.of(key.publicKey)
        let kid = kid ?? thumbprint
        self.keys = await JWTKeyCollection().add(ecdsa: key, kid: JWKIdentifier(string: kid))
        self.publicKey = key.publicKey
        self.kid = kid
        self.issuer = issuer
        self.audience = audience
    }

    /// A token for `identity`, valid for `lifetime` from now.
    public func token(for identity: Identity, lifetime: Duration = .seconds(3600)) async throws -> String {
        let now = Date()
        let subject: String
        var scope: String?
        switch identity {
        case .user(let id): subject = String(id)
        case .operator(let name): (subject, scope) = (name, Identity.operatorScope)
        }
        let claims = TokenClaims(
            sub: .init(value: subject), iss: .init(value: issuer), aud: .init(value: [audience]),
            exp: .init(value: now.addingTimeInterval(Double(lifetime.components.seconds))), nbf: nil, iat: .init(value: now), scope: scope)
        return try await keys.sign(claims, kid: JWKIdentifier(string: kid))
    }

    /// The public half as a JWKS document of one key under `kid`: what `serve` takes as
    /// COMMERCE_AUTH_JWKS where a file is awkward (a container's environment).
    public func jwks() throws -> String {
        guard let point = publicKey.parameters else { throw TokenVerifier.KeyFileError(description: "the signing key has no public point") }
        let key = ["kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid, "x": point.x, "y": point.y]
        let data = try JSONSerialization.data(withJSONObject: ["keys": [key]], options: [.sortedKeys])
        return String(decoding: data, as: UTF8.self)
    }
}
