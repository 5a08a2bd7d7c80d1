import Foundation
import JWTKit

/// The claims a commerce token carries: RFC 7519's registered ones, and `scope`.
/// `exp` is required: a token that never expires is refused, not trusted forever.
struct TokenClaims: JWTPayload {
    var sub: SubjectClaim
    var iss: IssuerClaim
    var aud: AudienceClaim
    var exp: ExpirationClaim
    var nbf: NotBeforeClaim?
    var iat: IssuedAtClaim?
    var scope: String?

    /// Time claims only: issuer and audience are the verifier's settings, checked after.
    func verify(using algorithm: some JWTAlgorithm) async throws {
        let now = Date()
        // A minute of leeway both ways, for clocks of issuer and service that differ a little.
        try exp.verifyNotExpired(currentDate: now.addingTimeInterval(-60))
        try nbf?.verifyNotBefore(currentDate: now.addingTimeInterval(60))
    }

    /// The identity these claims name: an operator when `scope` holds `commerce:operator`,
    /// else the user whose decimal id is `sub`.
    func identity() throws(TokenVerifier.Refusal) -> Identity {
        let scopes = (scope ?? "").split(separator: " ")
        if scopes.contains(Substring(Identity.operatorScope)) { return .operator(sub.value) }
        // Only the canonical spelling: "+1" or "0001" is not user 1 under another name.
        guard let id = Int64(sub.value), id > 0, String(id) == sub.value else {
            throw .init("sub '\(sub.value.prefix(64))' is not a user id, and the token has no \(Identity.operatorScope) scope")
        }
        return .user(id)
    }
}
