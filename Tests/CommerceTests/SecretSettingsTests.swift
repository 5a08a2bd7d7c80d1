import Foundation
import Kafka
import TestSupport
import Testing

/// A password given in a file stays out of the process's arguments, its log, its metrics and
/// its errors; the services reach a PostgreSQL that requires TLS (`verify-full`).
@Suite("secrets and PostgreSQL TLS", .serialized)
struct SecretSettingsTests {
    static let ca = postgresCA
    let secret = "hunter2-\(UUID().uuidString.prefix(8))"

    /// A file holding `text`, removed by the caller.
    static func file(_ text: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("secret-\(UUID()).txt").path
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// The test server's URL for `database`, with a password (the local server trusts 127.0.0.1
    /// and ignores it) and TLS checked against the local CA; `localhost` is the name its certificate holds.
    func url(_ database: String) -> String {
        let port = URLComponents(string: postgresURL)?.port ?? 5432
        return "postgres://commerce:\(secret)@localhost:\(port)/\(database)?sslmode=verify-full&sslrootcert=\(Self.ca)"
    }

    @Test func aDatabaseURLFromAFileServesOverTLSAndItsPasswordShowsNowhere() async throws {
        let id = String(UUID().uuidString.prefix(8).lowercased())
        try await Backend.admin("CREATE DATABASE s_\(id)")
        try await KafkaAdmin(configuration: KafkaConfiguration(brokers: brokers)).createTopics(
            ["commerce.order", "commerce.product", "commerce.balance", "commerce.payment"].map { "s\(id).\($0)" }, partitions: 1)
        let file = try Self.file(url("s_\(id)") + "\n")
        let port = freePort()
        let services = try ChildProcess(
            executable: binary("commerce"),
            arguments: ["serve", "all", "--database-url-file", file, "--http-port", "\(port)", "--topic-prefix", "s\(id).", "--brokers", brokers]
                + (try await TestTokens.shared.serveArguments()),
            logName: "secret-\(id)")
        defer {
            services.terminate()
            try? FileManager.default.removeItem(atPath: file)
        }
        let up = try await eventually(60) { await ChildProcess.get("http://127.0.0.1:\(port)/healthz")?.0 == 200 }
        #expect(up, "\(services.output)")
        // A write and a read through the encrypted sessions.
        let token = try await TestTokens.shared.token(.operator)
        #expect(
            await shell(
                "curl -sf -m 10 -o /dev/null -H 'Authorization: Bearer \(token)' http://127.0.0.1:\(port)/users/7/charge -d '{\"amount\": 500}'") == 0
        )
        #expect(await ChildProcess.get("http://127.0.0.1:\(port)/users/7/balance", bearer: token)?.1.contains("\"balance\":500") == true)
        let metrics = await ChildProcess.get("http://127.0.0.1:\(port)/metrics")?.1 ?? ""
        #expect(metrics.contains("commerce_"), "metrics answered")
        // Every session of the process is encrypted, by the server's own account.
        let pid = services.process.processIdentifier
        let sessions = try await Backend.column(
            "SELECT s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.application_name = 'commerce-\(pid)'", as: Bool.self)
        #expect(!sessions.isEmpty && sessions.allSatisfy { $0 }, "\(sessions)")
        let arguments = (try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)) ?? ""
        services.terminate()
        await services.waitForExit()
        for (place, text) in [("arguments", arguments), ("log", services.output), ("metrics", metrics)] {
            #expect(!text.contains(secret), "the password in the \(place)")
        }
        try await Backend.admin("DROP DATABASE s_\(id) WITH (FORCE)")
    }

    /// Each refusal is one line naming the flag or file, never the password.
    @Test func aBadSecretSettingIsOneLineWithoutThePassword() async throws {
        let good = try Self.file(url("postgres"))
        let twoLines = try Self.file(url("postgres") + "\nmore\n")
        let badURL = try Self.file("mysql://commerce:\(secret)@localhost/x")
        let noSlashes = try Self.file("postgres:/commerce:\(secret)@localhost/x")
        let rootWithoutMode = try Self.file("postgres://commerce:\(secret)@localhost/x?sslrootcert=/ca.pem")
        defer { [good, twoLines, badURL, noSlashes, rootWithoutMode].forEach { try? FileManager.default.removeItem(atPath: $0) } }
        let cases: [(arguments: String, environment: String, says: String)] = [
            ("--database-url-file /nonexistent/url", "", "cannot read --database-url-file /nonexistent/url"),
            ("--database-url-file \(twoLines)", "", "--database-url-file \(twoLines) must hold one line"),
            ("--database-url 'postgres://a@b/c' --database-url-file \(good)", "", "give --database-url or --database-url-file"),
            ("", "COMMERCE_DATABASE_URL=postgres://a@b/c COMMERCE_DATABASE_URL_FILE=\(good)", "give --database-url or --database-url-file"),
            ("--database-url-file \(badURL)", "", "a PostgreSQL URL starts with postgres://"),
            ("--database-url-file \(noSlashes)", "", "no host in '***@localhost/x'"),
            (
                "--database-url-file \(rootWithoutMode)", "",
                "sslrootcert in 'postgres://***@localhost/x?sslrootcert=/ca.pem' asks for a checked server"
            ),
        ]
        for (arguments, environment, says) in cases {
            let out = FileManager.default.temporaryDirectory.appendingPathComponent("secret-out-\(UUID()).txt").path
            // `timeout`: a build that took the setting would serve until stopped.
            let status = await shell(
                "env \(environment) timeout 30 '\(binary("commerce"))' serve all --http-port \(freePort()) --brokers '\(brokers)' \(arguments) >'\(out)' 2>&1"
            )
            let output = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
            try? FileManager.default.removeItem(atPath: out)
            let lines = output.split(separator: "\n")
            #expect(status == 64 && lines.count == 1 && lines[0].contains(says), "\(arguments) \(environment): \(status) \(output)")
            #expect(!output.contains(secret), "\(output)")
        }
    }
}
