import Crypto
import Foundation
import JWTKit
import TestSupport
import Testing

@testable import CommerceAuth

/// What a token must be to be believed: signed by a configured key (chosen by `kid`), not
/// expired, not early, from the configured issuer, for the configured audience.
@Suite("bearer token verification")
struct TokenVerifierTests {
    struct Claims: JWTPayload {
        var sub: String
        var iss: String = "commerce"
        var aud: [String] = ["commerce-api"]
        var exp: Int? = Int(Date().timeIntervalSince1970) + 600
        var nbf: Int?
        var scope: String?
        func verify(using algorithm: some JWTAlgorithm) async throws {}
    }

    static func verifier(_ files: [String]? = nil) async throws -> TokenVerifier {
        let testKey = try await TestTokens.shared.keys().publicKey
        return try await TokenVerifier(keyFiles: files ?? [testKey], issuer: "commerce", audience: "commerce-api")
    }

    /// A token with exactly `claims`, signed by the tests' key (or `key`) as `kid` (by default, the
    /// tests' key's thumbprint).
    static func token(_ claims: Claims, kid: String? = nil, key: ES256PrivateKey? = nil) async throws -> String {
        let testKey = try await TestTokens.shared.keys().signing
        let signing = try key ?? ES256PrivateKey(pem: String(contentsOfFile: testKey, encoding: .utf8))
        let kid = try kid ?? KeyThumbprint.of(try ES256PrivateKey(pem: String(contentsOfFile: testKey, encoding: .utf8)).publicKey)
        return try await JWTKeyCollection().add(ecdsa: signing, kid: JWKIdentifier(string: kid)).sign(claims, kid: JWKIdentifier(string: kid))
    }

    static func refusal(_ token: String, by verifier: TokenVerifier) async -> String? {
        do {
            _ = try await verifier.identity(of: token)
            return nil
        } catch { return error.description }
    }

    @Test func aGoodTokenNamesItsUserOrOperator() async throws {
        let verifier = try await Self.verifier()
        #expect(try await verifier.identity(of: Self.token(Claims(sub: "42"))) == .user(42))
        #expect(try await verifier.identity(of: Self.token(Claims(sub: "ops", scope: "read commerce:operator"))) == .operator("ops"))
        // What `commerce token` mints passes the same check.
        #expect(try await verifier.identity(of: TestTokens.shared.token(.user(9))) == .user(9))
    }

    @Test func eachBadTokenIsRefusedWithItsReason() async throws {
        let verifier = try await Self.verifier()
        let past = Int(Date().timeIntervalSince1970) - 3600
        let cases: [(Claims, String)] = [
            (Claims(sub: "1", exp: past), "the token has expired"),
            (Claims(sub: "1", exp: nil), "lacks a required claim"),
            (Claims(sub: "1", nbf: Int(Date().timeIntervalSince1970) + 3600), "the token is not valid yet"),
            (Claims(sub: "1", iss: "someone-else"), "issuer is not 'commerce'"),
            (Claims(sub: "1", aud: ["another-api"]), "audience does not include 'commerce-api'"),
            (Claims(sub: "alice"), "is not a user id"),
            (Claims(sub: "0"), "is not a user id"),
            (Claims(sub: "-5"), "is not a user id"),
            (Claims(sub: "+1"), "is not a user id"),
            (Claims(sub: "0001"), "is not a user id"),
        ]
        for (claims, reason) in cases {
            let refusal = await Self.refusal(try await Self.token(claims), by: verifier)
            #expect(refusal?.contains(reason) == true, "\(claims): \(refusal ?? "accepted")")
        }
        // Signed by a key nobody configured, under the configured key's id.
        #expect(
            await Self.refusal(try await Self.token(Claims(sub: "1"), key: ES256PrivateKey()), by: verifier)
                == "the token's signature does not verify")
        // Under a key id nobody configured.
        #expect(await Self.refusal(try await Self.token(Claims(sub: "1"), kid: "retired"), by: verifier)?.contains("key id 'retired'") == true)
        for garbage in ["", "a.b.c", "not a token", String(repeating: "x", count: 9_000)] {
            #expect(await Self.refusal(garbage, by: verifier) != nil, "\(garbage.prefix(40))")
        }
    }

    /// Tokens whose every claim is good and whose header names the configured key, but not its
    /// algorithm: `none` without a signature, HS256 and ES384 over a good ES256 signature; and a
    /// `crit` extension. Each is refused before any signature check (RFC 8725 §3.1).
    @Test func aHeaderNamingAnotherAlgorithmOrACriticalExtensionIsRefused() async throws {
        let verifier = try await Self.verifier()
        let pem = try String(contentsOfFile: try await TestTokens.shared.keys().signing, encoding: .utf8)
        let key = try P256.Signing.PrivateKey(pemRepresentation: pem)
        let kid = try KeyThumbprint.of(ES256PrivateKey(pem: pem).publicKey)
        let exp = Int(Date().timeIntervalSince1970) + 600
        let claims = #"{"sub":"ops","scope":"commerce:operator","iss":"commerce","aud":["commerce-api"],"exp":\#(exp)}"#
        func encoded(_ text: String) -> String { Self.base64URL(Data(text.utf8)) }
        func token(_ header: String, signed: Bool = true) throws -> String {
            let input = encoded(header) + "." + encoded(claims)
            return input + "." + (signed ? Self.base64URL(try key.signature(for: Data(input.utf8)).rawRepresentation) : "")
        }
        // The control: the same claims with the key's own header are an operator's token.
        #expect(try await verifier.identity(of: token(#"{"alg":"ES256","kid":"\#(kid)"}"#)) == .operator("ops"))
        let cases: [(String, Bool, String)] = [
            (#"{"alg":"none","kid":"\#(kid)"}"#, false, "algorithm 'none' is not its key's (ES256)"),
            (#"{"alg":"none"}"#, false, "algorithm 'none' is not its key's (ES256)"),
            (#"{"alg":"HS256","kid":"\#(kid)"}"#, true, "algorithm 'HS256' is not its key's (ES256)"),
            (#"{"alg":"ES384","kid":"\#(kid)"}"#, true, "algorithm 'ES384' is not its key's (ES256)"),
            (#"{"kid":"\#(kid)"}"#, true, "algorithm '' is not its key's (ES256)"),
            (#"{"alg":"ES256","kid":"\#(kid)","crit":["exp"]}"#, true, "critical header extensions"),
        ]
        for (header, signed, reason) in cases {
            let refusal = await Self.refusal(try token(header, signed: signed), by: verifier)
            #expect(refusal?.contains(reason) == true, "\(header): \(refusal ?? "accepted")")
        }
    }

    static func base64URL(_ data: Data) -> String { Base64URL.encode(data) }

    /// A JWK without `alg` gets the one its type implies, once, at load: a token naming another
    /// algorithm for it cannot pin it to that one (as the first token naming a key would in jwt-kit).
    @Test func aJWKWithoutAlgKeepsItsOwnAlgorithmWhateverTheFirstTokenSays() async throws {
        let key = ES256PrivateKey()
        let p = try #require(key.publicKey.parameters)
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("jwks-\(UUID().uuidString.prefix(8)).json").path
        try #"{"keys":[{"kty":"EC","crv":"P-256","kid":"idp-1","x":"\#(p.x)","y":"\#(p.y)"}]}"#.write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let verifier = try await Self.verifier([file])
        let forged = Self.base64URL(Data(#"{"alg":"ES384","kid":"idp-1"}"#.utf8)) + "." + Self.base64URL(Data("{}".utf8)) + ".AAAA"
        #expect(await Self.refusal(forged, by: verifier)?.contains("algorithm 'ES384' is not its key's (ES256)") == true)
        #expect(try await verifier.identity(of: Self.token(Claims(sub: "6"), kid: "idp-1", key: key)) == .user(6))
    }

    /// A token checked once is answered from memory until its window ends, and not after.
    @Test func aRememberedTokenExpiresAsItsClaimsSay() async throws {
        let verifier = try await Self.verifier()
        let expires = Int(Date().timeIntervalSince1970) + 100
        let token = try await Self.token(Claims(sub: "8", exp: expires))
        #expect(try await verifier.identity(of: token) == .user(8))
        let end = Date(timeIntervalSince1970: Double(expires))
        #expect(verifier.verified.identity(of: token, now: end.addingTimeInterval(59)) == .user(8))
        #expect(verifier.verified.identity(of: token, now: end.addingTimeInterval(61)) == nil)
        // Gone from memory once seen expired; the full check then refuses it on its own.
        #expect(verifier.verified.identity(of: token) == nil)
        let early = VerifiedTokens()
        early.keep("t", .user(1), from: end, until: end.addingTimeInterval(600))
        #expect(early.identity(of: "t", now: end.addingTimeInterval(-61)) == nil)
        early.keep("t", .user(1), from: end, until: end.addingTimeInterval(600))
        #expect(early.identity(of: "t", now: end.addingTimeInterval(-59)) == .user(1))
    }

    @Test func aJWKSServesOldAndNewKeysWhileRotating() async throws {
        let old = ES256PrivateKey()
        let new = ES256PrivateKey()
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("jwks-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        func jwk(_ key: ES256PrivateKey, _ kid: String) throws -> String {
            let p = try #require(key.publicKey.parameters)
            return #"{"kty":"EC","crv":"P-256","alg":"ES256","kid":"\#(kid)","x":"\#(p.x)","y":"\#(p.y)"}"#
        }
        let file = folder.appendingPathComponent("keys.json").path
        try #"{"keys":[\#(try jwk(old, "2026-11")),\#(try jwk(new, "2026-12"))]}"#.write(toFile: file, atomically: true, encoding: .utf8)
        let verifier = try await Self.verifier([file])
        #expect(try await verifier.identity(of: Self.token(Claims(sub: "3"), kid: "2026-11", key: old)) == .user(3))
        #expect(try await verifier.identity(of: Self.token(Claims(sub: "4"), kid: "2026-12", key: new)) == .user(4))
        // The old key under the new key's id: the kid chooses the key, the signature must match it.
        #expect(await Self.refusal(try await Self.token(Claims(sub: "5"), kid: "2026-12", key: old), by: verifier) != nil)
    }

    /// The public key's bytes as an HMAC secret, under the key's own id: the classic algorithm
    /// confusion. The key's algorithm is ES256; nothing else is taken.
    @Test func aTokenSignedWithThePublicKeyAsAnHMACSecretIsRefused() async throws {
        let verifier = try await Self.verifier()
        let publicPEM = try String(contentsOfFile: try await TestTokens.shared.keys().publicKey, encoding: .utf8)
        let kid = JWKIdentifier(string: try KeyThumbprint.of(ES256PublicKey(pem: publicPEM)))
        let forged = try await JWTKeyCollection().add(hmac: HMACKey(from: publicPEM), digestAlgorithm: .sha256, kid: kid)
            .sign(Claims(sub: "1", scope: "commerce:operator"), kid: kid)
        #expect(await Self.refusal(forged, by: verifier) != nil)
    }

    /// RFC 7638's thumbprint, against one computed apart (Python's hashlib over the canonical
    /// members of this key).
    @Test func aKeysIdIsItsRFC7638Thumbprint() throws {
        let key = try ES256PublicKey(
            parameters: ("hDrkTzQl2uR4JadoSoofs4Fzkoc9JbHCDwLtL-mO0ZY", "1uwezMc42SRYTHsFb1Cwuo_1Eny8HAZpu-K4W8uPv-8"))
        #expect(try KeyThumbprint.of(key) == "QuBw_XZBjmCEp9rSJ_zZkLaeZSq38oPT328aYdyLHNU")
    }

    /// `commerce token --jwks` prints what `serve` takes as COMMERCE_AUTH_JWKS: the tokens of the
    /// same key verify against it.
    @Test func theMintersJWKSVerifiesItsTokens() async throws {
        let minter = try await TokenMinter(
            signingKey: String(contentsOfFile: try await TestTokens.shared.keys().signing, encoding: .utf8), named: "test", kid: "inline-1",
            issuer: "commerce", audience: "commerce-api")
        let verifier = try await TokenVerifier(keys: [.jwks(try minter.jwks())], issuer: "commerce", audience: "commerce-api")
        #expect(try await verifier.identity(of: minter.token(for: .user(12))) == .user(12))
        #expect(try await verifier.identity(of: minter.token(for: .operator("ops"))) == .operator("ops"))
        let notJSON = await #expect(throws: TokenVerifier.KeyFileError.self) {
            try await TokenVerifier(keys: [.jwks("-----BEGIN PUBLIC KEY-----")], issuer: "commerce", audience: "commerce-api")
        }
        #expect(notJSON?.description == "the inline JWKS is not a JSON document")
    }

    @Test func aKeyFileThatIsNoKeyIsOneLineNamingIt() async throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("not-a-key-\(UUID().uuidString.prefix(8)).pem").path
        try "hello\n".write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        for files in [[file], ["/nonexistent/key.pem"], []] {
            let error = await #expect(throws: TokenVerifier.KeyFileError.self) { try await Self.verifier(files) }
            #expect(
                error.map { !$0.description.contains("\n") && ($0.description.contains(files.first ?? "no token key")) } == true,
                "\(String(describing: error))")
        }
    }
}
