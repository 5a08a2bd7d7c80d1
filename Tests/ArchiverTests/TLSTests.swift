import Foundation
import Kafka
import Mongo
import TestSupport
import Testing

@testable import Archiver

/// TLS to both servers through stunnel (neither stand-in serves TLS itself): the services
/// produce and the archiver consumes over TLS to a broker that advertises the tunnel's port,
/// and the archiver writes and `archiver history` reads over TLS to the Mongo-wire server. A
/// wrong CA fails closed with an error that says so, and nothing falls back to plaintext.
@Suite("TLS to MongoDB and Kafka", .serialized)
struct TLSTests {
    static let mongoPort = URLComponents(string: mongoURI)?.port ?? 27017

    static func tlsMongoURI(_ port: Int, ca: String) -> String { "mongodb://127.0.0.1:\(port)/?tls=true&tlsCAFile=\(ca)" }

    /// librdkafka's TLS settings in the `--kafka-config-file` form.
    static func kafkaConfigFile(ca: String, in folder: String) throws -> String {
        let path = "\(folder)/kafka-\(UUID().uuidString.prefix(6)).properties"
        try "security.protocol=SSL\nssl.ca.location=\(ca)\n".write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// A private broker (memory only) behind a TLS tunnel, advertising the tunnel's port: every
    /// connection a client is told to make is a TLS one.
    static func tlsBroker(_ certificates: TestCertificates) async throws -> (PrivateKafka, TLSTunnel) {
        let (kafkaPort, tunnelPort) = (freePort(), freePort())
        let kafka = try await PrivateKafka(port: kafkaPort, advertising: tunnelPort)
        do {
            return (kafka, try await TLSTunnel(port: tunnelPort, to: kafkaPort, certificates: certificates))
        } catch {
            kafka.process.terminate()
            throw error
        }
    }

    /// `archiver history balance` for `user`: exit status and output.
    static func history(_ mongo: String, database: String, user: Int) async -> (Int32, String) {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("history-\(UUID()).txt").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        let status = await shell(
            "timeout 60 '\(binary("archiver"))' history balance --user \(user) --json --mongo-uri '\(mongo)' --database \(database) >'\(out)' 2>&1")
        return (status, (try? String(contentsOfFile: out, encoding: .utf8)) ?? "")
    }

    @Test func aChargeTravelsFromTheServicesThroughTheArchiverToHistoryOverTLSOnly() async throws {
        let certificates = try await TestCertificates()
        defer { certificates.remove() }
        let mongo = try await TLSTunnel(to: Self.mongoPort, certificates: certificates)
        defer { mongo.terminate() }
        let (kafka, tunnel) = try await Self.tlsBroker(certificates)
        defer { (kafka.process.terminate(), tunnel.terminate()) }
        let tunnelPort = tunnel.port
        let config = try Self.kafkaConfigFile(ca: certificates.ca, in: certificates.folder)
        let tls = KafkaConfiguration(brokers: "127.0.0.1:\(tunnelPort)", extra: ["security.protocol": "SSL", "ssl.ca.location": certificates.ca])
        try await KafkaAdmin(configuration: tls).createTopics(
            ["commerce.order", "commerce.product", "commerce.balance", "commerce.payment", "archive.dlq", "archive.compensation"], partitions: 1)

        let database = "tls_\(UUID().uuidString.prefix(8).lowercased())"
        let admin = freePort()
        let archiver = try ArchiverProcess(
            arguments: [
                "run", "--brokers", "127.0.0.1:\(tunnelPort)", "--kafka-config-file", config,
                "--mongo-uri", Self.tlsMongoURI(mongo.port, ca: certificates.ca), "--database", database, "--group", "tls-archiver",
                "--admin-port", "\(admin)", "--admin-host", "127.0.0.1", "--session-timeout-ms", "6000", "--max-poll-interval-ms", "10000",
            ], adminPort: admin)
        defer { archiver.terminate() }
        let http = freePort()
        let services = try ChildProcess(
            executable: binary("commerce"),
            arguments: [
                "serve", "all", "--brokers", "127.0.0.1:\(tunnelPort)", "--kafka-config-file", config, "--http-port", "\(http)",
                "--data-dir", "\(certificates.folder)/data",
            ] + (try await TestTokens.shared.serveArguments()), logName: "tls-services")
        defer { services.terminate() }
        #expect(try await eventually(60) { await archiver.isReady() }, "\(archiver.output)")
        #expect(try await eventually(60) { await ChildProcess.get("http://127.0.0.1:\(http)/healthz")?.0 == 200 }, "\(services.output)")

        let token = try await TestTokens.shared.token(.operator)
        #expect(
            await shell(
                "curl -sf -m 10 -o /dev/null -H 'Authorization: Bearer \(token)' http://127.0.0.1:\(http)/users/5/charge -d '{\"amount\": 700}'") == 0
        )
        let store = HistoryStore(database: try MongoClient(uri: mongoURI).database(database))
        defer { Task { try? await store.database.drop() } }
        let archived = try await eventually(60) { try await store.collection(of: .balance).count() == 1 }
        #expect(archived, "archiver: \(archiver.output)\nservices: \(services.output)")
        // The operator's query, over TLS too.
        let (status, output) = await Self.history(Self.tlsMongoURI(mongo.port, ca: certificates.ca), database: database, user: 5)
        #expect(status == 0 && output.contains("\"amount\":700"), "\(output)")
    }

    @Test func aWrongCAFailsClosedWithAClearErrorAndNothingFallsBackToPlaintext() async throws {
        let certificates = try await TestCertificates()
        defer { certificates.remove() }
        let mongo = try await TLSTunnel(to: Self.mongoPort, certificates: certificates)
        defer { mongo.terminate() }
        // MongoDB: a CA that did not sign the tunnel's certificate.
        let (wrong, refused) = await Self.history(Self.tlsMongoURI(mongo.port, ca: certificates.other), database: "tls_none", user: 1)
        #expect(wrong != 0 && refused.split(separator: "\n").count == 1, "\(refused)")
        #expect(refused.contains("TLS handshake failed: certificate verify failed"), "\(refused)")
        // tls=true against the plaintext port: a handshake that fails, not a plaintext session.
        let (plain, plainRefused) = await Self.history(Self.tlsMongoURI(Self.mongoPort, ca: certificates.ca), database: "tls_none", user: 1)
        #expect(plain != 0 && plainRefused.split(separator: "\n").count == 1, "\(plainRefused)")
        #expect(plainRefused.contains("cannot reach MongoDB"), "\(plainRefused)")

        // Kafka: the archiver with a wrong CA stops at start, in one line that says why.
        let (kafka, tunnel) = try await Self.tlsBroker(certificates)
        defer { (kafka.process.terminate(), tunnel.terminate()) }
        let tunnelPort = tunnel.port
        let config = try Self.kafkaConfigFile(ca: certificates.other, in: certificates.folder)
        let admin = freePort()
        let archiver = try ArchiverProcess(
            arguments: [
                "run", "--brokers", "127.0.0.1:\(tunnelPort)", "--kafka-config-file", config, "--mongo-uri", mongoURI,
                "--database", "tls_none", "--group", "tls-wrong-ca", "--admin-port", "\(admin)", "--admin-host", "127.0.0.1",
                "--session-timeout-ms", "6000",
            ], adminPort: admin)
        defer { archiver.terminate() }
        #expect(try await eventually(60) { !archiver.process.isRunning }, "\(archiver.output)")
        let lines = archiver.output.split(separator: "\n")
        #expect(archiver.process.terminationStatus != 0 && lines.count == 1, "\(archiver.output)")
        #expect(lines.first?.contains("certificate verify failed") == true, "\(archiver.output)")
    }
}
