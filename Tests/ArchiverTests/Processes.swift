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

func adminPort() -> Int { freePort() }
