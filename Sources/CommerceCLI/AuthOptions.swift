import ArgumentParser
import CLISupport
import CommerceAuth
import CommerceServer
import Logging

/// The issuer and audience a token must name; `serve` checks them, `token` and `simulate` write them.
struct TokenClaimOptions: ParsableArguments {
    @Option(help: "The issuer ('iss') tokens must name (env COMMERCE_AUTH_ISSUER, default commerce).")
    var authIssuer: String?

    @Option(help: "The audience ('aud') tokens must include (env COMMERCE_AUTH_AUDIENCE, default commerce-api).")
    var authAudience: String?

    var issuer: String { Settings.value(authIssuer, "COMMERCE_AUTH_ISSUER", "commerce") }
    var audience: String { Settings.value(authAudience, "COMMERCE_AUTH_AUDIENCE", "commerce-api") }
}

/// How `serve` knows who a request acts as.
struct AuthOptions: ParsableArguments {
    @Option(
        help:
            "jwt: every API request needs a bearer token (default); none: no tokens, everyone is an operator, for local use only (env COMMERCE_AUTH)."
    )
    var auth: String?

    @Option(
        help: """
            A key tokens are checked with: an ECDSA P-256 public key in PEM (its key id is its RFC 7638 thumbprint, as `commerce token` names it) or a JWKS \
            file; repeat it to serve old and new keys while rotating (env COMMERCE_AUTH_KEY_FILE, comma-separated; or COMMERCE_AUTH_JWKS, \
            a JWKS document itself).
            """)
    var authKeyFile: [String] = []

    @OptionGroup var claims: TokenClaimOptions

    func authentication(address: String, logger: Logger) async throws -> Authentication {
        switch Settings.value(auth, "COMMERCE_AUTH", "jwt") {
        case "none":
            logger.warning(
                "AUTHENTICATION IS OFF (--auth none): anyone who reaches \(address) acts as an operator, for every user. Use it on your own machine only."
            )
            return .none
        case "jwt":
            var sources = authKeyFile.map(TokenVerifier.KeySource.file)
            if sources.isEmpty {
                sources =
                    (Settings.optional(nil, "COMMERCE_AUTH_KEY_FILE")?.split(separator: ",").map { .file(String($0)) } ?? [])
                    + (Settings.optional(nil, "COMMERCE_AUTH_JWKS").map { [.jwks($0)] } ?? [])
            }
            guard !sources.isEmpty else {
                throw ValidationError(
                    "no token key: give --auth-key-file (env COMMERCE_AUTH_KEY_FILE or COMMERCE_AUTH_JWKS), or --auth none to serve without tokens")
            }
            do {
                return .tokens(try await TokenVerifier(keys: sources, issuer: claims.issuer, audience: claims.audience))
            } catch {
                throw ValidationError("\(error)")
            }
        case let other: throw ValidationError("--auth must be jwt or none, got '\(other)'")
        }
    }
}

/// A development signing key, for `token` and `simulate`: the private half of the pair
/// `scripts/services` makes. Real deployments get tokens from their identity provider.
struct SigningOptions: ParsableArguments {
    @Option(
        help: """
            An ECDSA P-256 private key in PEM that signs tokens (env COMMERCE_AUTH_SIGNING_KEY_FILE; or COMMERCE_AUTH_SIGNING_KEY, the PEM \
            itself). The tokens name the key by its RFC 7638 thumbprint.
            """)
    var signingKeyFile: String?

    @OptionGroup var claims: TokenClaimOptions

    /// nil when no key is given.
    func minter() async throws -> TokenMinter? {
        do {
            if let path = Settings.optional(signingKeyFile, "COMMERCE_AUTH_SIGNING_KEY_FILE") {
                return try await TokenMinter(signingKeyFile: path, issuer: claims.issuer, audience: claims.audience)
            }
            guard let pem = Settings.optional(nil, "COMMERCE_AUTH_SIGNING_KEY") else { return nil }
            return try await TokenMinter(
                signingKey: pem, named: "COMMERCE_AUTH_SIGNING_KEY", issuer: claims.issuer, audience: claims.audience)
        } catch {
            throw ValidationError("\(error)")
        }
    }
}
