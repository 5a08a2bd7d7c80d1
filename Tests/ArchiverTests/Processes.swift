import Foundation
import TestSupport
import Testing

/// The `archiver` executable as a child process, with its admin endpoints.
final class ArchiverProcess: ChildProcess, @unchecked Sendable {
    let adminPort: Int

    init(arguments: [String], adminPort: Int) throws {
        self.adminPort = adminPort
        try super.init(executable: binary("archiver"), arguments: arguments, logName: "archiver-\(adminPort)")
    }

    /// True once /readyz answers 200: both servers reachable and partitions assigned.
    func isReady() async -> Bool { await Self.get("http://127.0.0.1:\(adminPort)/readyz")?.0 == 200 }

    func metrics() async -> String? { await Self.get("http://127.0.0.1:\(adminPort)/metrics")?.1 }
}

/// A private Mongo-wire server on its own port and data folder, so a test can stop and
/// restart it without disturbing the shared one.
final class PrivateMongo: Sendable {
    let port: Int
    let runDir: String
    var uri: String { "mongodb://127.0.0.1:\(port)" }

    init(port: Int) async throws {
        self.port = port
        runDir = FileManager.default.temporaryDirectory.appendingPathComponent("mongo-\(port)-\(UUID().uuidString.prefix(6))").path
        try await services("start-mongo")
    }

    func stop() async throws { try await services("stop-mongo") }
    func start() async throws { try await services("start-mongo") }

    private func services(_ command: String) async throws {
        let script = packageRoot.appendingPathComponent("scripts/services").path
        let status = await shell("MONGO_PORT=\(port) SERVICES_RUN_DIR='\(runDir)' '\(script)' \(command) >/dev/null 2>&1")
        guard status == 0 else { throw CocoaError(.executableLoad) }
    }
}

/// A private Kafka-protocol broker (Tansu, memory only) on its own port, so a test can take
/// the broker away without disturbing the shared one.
final class PrivateKafka: @unchecked Sendable {
    let port: Int
    private(set) var process: ChildProcess
    var brokers: String { "127.0.0.1:\(port)" }

    /// The address clients are told to use: `port`, or a TLS tunnel's in front of it.
    let advertisedPort: Int

    init(port: Int, advertising advertisedPort: Int? = nil) async throws {
        self.port = port
        self.advertisedPort = advertisedPort ?? port
        process = try Self.launch(port, advertising: self.advertisedPort)
        guard try await eventually(30, { await Self.listening(port) }) else { throw CocoaError(.executableLoad) }
    }

    func kill9() async { await process.kill9() }

    /// Freezes the broker (SIGSTOP): connections stay open and nothing answers, as with a hung host.
    func freeze() { kill(process.process.processIdentifier, SIGSTOP) }
    func thaw() { kill(process.process.processIdentifier, SIGCONT) }

    /// A new broker on the same port: memory only, so it starts empty.
    func restart() async throws {
        process = try Self.launch(port, advertising: advertisedPort)
        guard try await eventually(30, { await Self.listening(port) }) else { throw CocoaError(.executableLoad) }
    }

    private static func launch(_ port: Int, advertising advertisedPort: Int) throws -> ChildProcess {
        try ChildProcess(
            executable: packageRoot.appendingPathComponent(".deps/bin/tansu").path,
            arguments: [
                "broker", "--listener-url", "tcp://127.0.0.1:\(port)", "--advertised-listener-url", "tcp://127.0.0.1:\(advertisedPort)", "--silent",
            ],
            logName: "tansu-\(port)")
    }

    private static func listening(_ port: Int) async -> Bool { await shell("bash -c 'exec 3<>/dev/tcp/127.0.0.1/\(port)' 2>/dev/null") == 0 }
}

func adminPort() -> Int { freePort() }
