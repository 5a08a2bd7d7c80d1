import ArgumentParser
import CommerceAuth
import Simulator

/// `commerce token`: a bearer token from the development key, for curl and scripts.
struct TokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token", abstract: "Print a bearer token signed with the development key, for a user or an operator.")

    @Option(help: "The user the token acts for.")
    var user: Int64?

    @Option(name: .customLong("operator"), help: "An operator's name: the token manages products, charges balances and acts for any user.")
    var operatorName: String?

    @Option(help: "Seconds the token is valid (1-86400).")
    var lifetime = 3600

    @Flag(help: "Print the signing key's public half as a JWKS document instead (for serve's COMMERCE_AUTH_JWKS).")
    var jwks = false

    @OptionGroup var signing: SigningOptions

    func validate() throws {
        guard jwks || (user == nil) != (operatorName == nil) else { throw ValidationError("give exactly one of --user and --operator") }
        guard !jwks || (user == nil && operatorName == nil) else {
            throw ValidationError("--jwks prints a key, not a token: drop --user and --operator")
        }
        if let user, user <= 0 { throw ValidationError("--user must be a positive integer, got \(user)") }
        if let operatorName, operatorName.isEmpty { throw ValidationError("--operator must not be empty") }
        guard (1...86_400).contains(lifetime) else { throw ValidationError("--lifetime must be 1-86400, got \(lifetime)") }
    }

    func run() async throws {
        guard let minter = try await signing.minter() else {
            throw ValidationError("no signing key: give --signing-key-file (env COMMERCE_AUTH_SIGNING_KEY_FILE)")
        }
        if jwks {
            print(try minter.jwks())
            return
        }
        let identity: Identity = user.map { .user($0) } ?? .operator(operatorName ?? "")
        print(try await minter.token(for: identity, lifetime: .seconds(lifetime)))
    }
}

/// One token per shopper and one for the operator, reused until half its hour has passed, then
/// made again: a run may last longer than a token.
actor MintedTokens {
    let minter: TokenMinter
    var minted: [APIClient.Caller: (token: String, renew: ContinuousClock.Instant)] = [:]

    init(minter: TokenMinter) { self.minter = minter }

    func token(_ caller: APIClient.Caller) async throws -> String {
        if let kept = minted[caller], ContinuousClock.now < kept.renew { return kept.token }
        let token = try await minter.token(for: caller.identity, lifetime: .seconds(3600))
        minted[caller] = (token, ContinuousClock.now + .seconds(1800))
        return token
    }
}

extension APIClient.Caller {
    var identity: Identity {
        switch self {
        case .user(let id): .user(id)
        case .operator: .operator("simulate")
        }
    }
}
