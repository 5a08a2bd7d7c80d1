import Foundation
import Logging
import SQLStore
import Synchronization
import TestSupport
import Testing

@testable import PostgresStore

/// Bytes a client sent after a server said it has no TLS (`aServerWithoutTLS...`).
private let plaintextBytes = Atomic<Int>(0)

/// TLS to the local PostgreSQL (`ssl=on`; scripts/services makes its CA, POSTGRES_CA, and a
/// certificate naming only `localhost`): encrypted as asked, and every failed check fails closed
/// with a one-line error naming the cause.
@Suite("PostgreSQL TLS")
struct PostgresTLSTests {
    static let ca = postgresCA

    /// postgresURL with `host` and query `options`.
    static func url(host: String = "127.0.0.1", port: Int? = nil, _ options: String) throws -> PostgresURL {
        let base = try PostgresURL(postgresURL)
        return try PostgresURL("postgres://\(base.user)@\(host):\(port ?? base.port)/\(base.database)?\(options)")
    }

    /// Whether the store's session is encrypted, by the server's own account.
    static func encrypted(_ url: PostgresURL) async throws -> Bool {
        let store = PostgresStore(url: url, schema: "public", connections: 1, logger: Logger(label: "test"))
        do {
            let ssl = try await store.read { db in
                try db.value(Int64.self, "SELECT CASE WHEN ssl THEN 1 ELSE 0 END FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            }
            await store.close()
            return ssl == 1
        } catch {
            await store.close()
            throw error
        }
    }

    /// The one-line error of a first statement through `url`.
    static func refusal(_ url: PostgresURL) async -> String? {
        do {
            _ = try await encrypted(url)
            return nil
        } catch {
            return "\(error)"
        }
    }

    @Test func eachSSLModeConnectsEncryptedAndDisableDoesNot() async throws {
        #expect(try await Self.encrypted(Self.url("sslmode=disable")) == false)
        #expect(try await Self.encrypted(Self.url("sslmode=require")) == true)
        #expect(try await Self.encrypted(Self.url("sslmode=verify-ca&sslrootcert=\(Self.ca)")) == true)
        #expect(try await Self.encrypted(Self.url(host: "localhost", "sslmode=verify-full&sslrootcert=\(Self.ca)")) == true)
    }

    @Test func verifyFullRefusesAHostTheCertificateDoesNotName() async throws {
        // 127.0.0.1 reaches the same server, whose certificate names only `localhost`.
        let failure = await Self.refusal(try Self.url(host: "127.0.0.1", "sslmode=verify-full&sslrootcert=\(Self.ca)"))
        #expect(failure?.contains("the server's certificate does not name the host '127.0.0.1'") == true, "\(failure ?? "connected")")
        #expect(failure?.contains("\n") == false)
        // verify-ca does not look at the name.
        #expect(try await Self.encrypted(Self.url(host: "127.0.0.1", "sslmode=verify-ca&sslrootcert=\(Self.ca)")) == true)
    }

    @Test func anUnknownCAIsRefusedByVerifyCAAndVerifyFullAndByRequireGivenIt() async throws {
        let certificates = try await TestCertificates()  // its `other` CA signed nothing the server holds
        defer { certificates.remove() }
        let other = certificates.other
        for mode in ["require", "verify-ca", "verify-full"] {
            let failure = await Self.refusal(try Self.url(host: "localhost", "sslmode=\(mode)&sslrootcert=\(other)"))
            #expect(
                failure?.contains("the server's certificate is not signed by a CA in sslrootcert \(other)") == true,
                "\(mode): \(failure ?? "connected")")
            #expect(failure?.contains("\n") == false)
        }
    }

    @Test func aRootCertificateFileThatCannotBeReadOrHoldsNoCertificateIsNamed() async throws {
        let missing = "/nonexistent/ca.crt"
        let unreadable = await Self.refusal(try Self.url("sslmode=verify-ca&sslrootcert=\(missing)"))
        #expect(unreadable?.contains("sslrootcert \(missing) cannot be read") == true, "\(unreadable ?? "connected")")
        let empty = FileManager.default.temporaryDirectory.appendingPathComponent("empty-\(UUID()).crt").path
        try Data("not a certificate\n".utf8).write(to: URL(fileURLWithPath: empty))
        defer { try? FileManager.default.removeItem(atPath: empty) }
        let junk = await Self.refusal(try Self.url("sslmode=verify-ca&sslrootcert=\(empty)"))
        #expect(junk?.contains("sslrootcert \(empty) holds no PEM certificate") == true, "\(junk ?? "connected")")
    }

    /// A server that answers the SSLRequest with "N" (no TLS) and records whether the client then
    /// went on in plaintext (any byte after the request) instead of hanging up.
    @Test func aServerWithoutTLSIsRefusedAndNothingIsSentInPlaintext() async throws {
        let (listener, port) = try LoopbackSocket.bind(port: 0)
        Glibc.listen(listener, 4)
        let answered = DispatchSemaphore(value: 0)  // the server has seen what followed its "N"
        let server = Thread {
            LoopbackSocket.acceptEach(listener) { client in
                var request = [UInt8](repeating: 0, count: 8)
                _ = recv(client, &request, 8, Int32(MSG_WAITALL))
                _ = LoopbackSocket.writeAll(client, Array("N".utf8))
                var more = [UInt8](repeating: 0, count: 64)
                let n = recv(client, &more, 64, 0)
                if n > 0 { plaintextBytes.add(n, ordering: .relaxed) }
                close(client)
                answered.signal()
            }
        }
        server.start()
        defer { shutdown(listener, Int32(SHUT_RDWR)) }
        let failure = await Self.refusal(try Self.url(port: port, "sslmode=require"))
        #expect(
            failure?.contains("the server does not offer TLS, and sslmode=require never falls back to plaintext") == true, "\(failure ?? "connected")"
        )
        // The client's next move, a hang-up or plaintext, is seen before it is judged.
        #expect(answered.wait(timeout: .now() + 30) == .success)
        #expect(plaintextBytes.load(ordering: .relaxed) == 0)
    }
}
