import Foundation

/// The CA scripts/services makes for the local PostgreSQL's TLS (`POSTGRES_CA`).
public let postgresCA =
    ProcessInfo.processInfo.environment["POSTGRES_CA"] ?? packageRoot.appendingPathComponent(".run/postgres-tls/ca.crt").path

/// A CA and a server certificate it signs, made with openssl in a folder of their own, for
/// 127.0.0.1 and `localhost`; `other` is a CA that signed nothing here (the wrong one).
public struct TestCertificates: Sendable {
    public let folder: String
    public var ca: String { "\(folder)/ca.crt" }
    public var other: String { "\(folder)/other.crt" }
    public var certificate: String { "\(folder)/server.crt" }
    public var key: String { "\(folder)/server.key" }

    public init() async throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("tls-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
        let status = await shell(
            """
            cd '\(folder)' && printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' >san.ext &&
            openssl req -x509 \(ec) -days 2 -subj '/CN=test CA' -keyout ca.key -out ca.crt &&
            openssl req -x509 \(ec) -days 2 -subj '/CN=some other CA' -keyout other.key -out other.crt &&
            openssl req \(ec) -subj '/CN=127.0.0.1' -keyout server.key -out server.csr &&
            openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile san.ext -out server.crt
            """ + " >openssl.log 2>&1")
        guard status == 0 else { throw TunnelError("openssl could not make the test certificates (\(folder)/openssl.log)") }
    }

    public func remove() { try? FileManager.default.removeItem(atPath: folder) }
}

/// stunnel (Debian's stunnel4) terminating TLS on a port of its own in front of a plaintext
/// server: what the Mongo-wire server and the broker lack themselves.
public final class TLSTunnel: ChildProcess, @unchecked Sendable {
    public let port: Int

    public init(port: Int = freePort(), to target: Int, certificates: TestCertificates) async throws {
        self.port = port
        let config = "\(certificates.folder)/stunnel-\(port).conf"
        try """
        foreground = yes
        pid =
        [tunnel]
        accept = 127.0.0.1:\(port)
        connect = 127.0.0.1:\(target)
        cert = \(certificates.certificate)
        key = \(certificates.key)
        """.write(toFile: config, atomically: true, encoding: .utf8)
        try super.init(executable: "/usr/bin/stunnel", arguments: [config], logName: "stunnel-\(port)")
        guard try await eventually(10, { self.process.isRunning && LoopbackSocket.accepts(port: port) }) else {
            terminate()
            throw TunnelError("stunnel did not listen on 127.0.0.1:\(port): \(output)")
        }
    }
}

public struct TunnelError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
