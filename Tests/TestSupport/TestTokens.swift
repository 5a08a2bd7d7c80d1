import Foundation

/// A token key pair of the tests' own (not the development pair of scripts/services), made
/// once per test process, and bearer tokens signed with it by `commerce token`.
public actor TestTokens {
    public static let shared = TestTokens()

    /// Who a token acts as.
    public enum Who: Hashable, Sendable {
        case user(Int64)
        case `operator`
    }

    var making: Task<String, any Error>?
    var minted: [Who: String] = [:]

    /// The folder of `test-signing.pem` and `test-public.pem` (key id: the key's RFC 7638 thumbprint).
    public func keys() async throws -> (signing: String, publicKey: String) {
        let folder = try await madeFolder()
        return ("\(folder)/test-signing.pem", "\(folder)/test-public.pem")
    }

    /// `serve`'s flags to check the tokens made here, whatever the runner's environment says.
    public func serveArguments() async throws -> [String] {
        ["--auth", "jwt", "--auth-key-file", try await keys().publicKey, "--auth-issuer", "commerce", "--auth-audience", "commerce-api"]
    }

    /// `simulate`'s flag to sign its tokens with the tests' key.
    public func simulateArguments() async throws -> [String] { ["--signing-key-file", try await keys().signing] }

    /// A token for `who`, valid for an hour; minted once and reused.
    public func token(_ who: Who) async throws -> String {
        if let token = minted[who] { return token }
        let flags: String
        switch who {
        case .user(let id): flags = "--user \(id)"
        case .operator: flags = "--operator tests"
        }
        let (signing, _) = try await keys()
        let out = "\(try await madeFolder())/token-\(UUID().uuidString.prefix(8))"
        let status = await shell(
            "COMMERCE_AUTH_ISSUER= COMMERCE_AUTH_AUDIENCE= '\(binary("commerce"))' token \(flags) --signing-key-file '\(signing)' >'\(out)' 2>&1")
        let text = ((try? String(contentsOfFile: out, encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        guard status == 0, !text.isEmpty else { throw TunnelError("commerce token \(flags) failed: \(text)") }
        minted[who] = text
        return text
    }

    /// One folder for the process: the first caller's task makes it, and every other awaits the
    /// same task (the actor is reentrant across the `await`).
    private func madeFolder() async throws -> String {
        if let making { return try await making.value }
        let task = Task { try await Self.makeKeys() }
        making = task
        return try await task.value
    }

    private static func makeKeys() async throws -> String {
        let made = FileManager.default.temporaryDirectory.appendingPathComponent("tokens-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: made, withIntermediateDirectories: true)
        let status = await shell(
            """
            cd '\(made)' && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out test-signing.pem &&
            openssl pkey -in test-signing.pem -pubout -out test-public.pem
            """ + " >openssl.log 2>&1")
        guard status == 0 else { throw TunnelError("openssl could not make the test token keys (\(made)/openssl.log)") }
        return made
    }
}
