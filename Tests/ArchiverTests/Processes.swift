import Foundation
import Testing

/// The `archiver` executable as a child process, for crash, signal and outage scenarios.
final class ArchiverProcess: @unchecked Sendable {
    static var binary: String {
        ProcessInfo.processInfo.environment["ARCHIVER_BIN"] ?? packageRoot.appendingPathComponent(".build/debug/archiver").path
    }

    let process = Process()
    let adminPort: Int
    let log: URL

    init(arguments: [String], adminPort: Int) throws {
        self.adminPort = adminPort
        log = FileManager.default.temporaryDirectory.appendingPathComponent("archiver-\(adminPort)-\(UUID().uuidString.prefix(6)).log")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = arguments
        let handle = try FileHandle(forWritingTo: log)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
    }

    func kill9() async {
        kill(process.processIdentifier, SIGKILL)
        await waitForExit()
    }

    func terminate() { kill(process.processIdentifier, SIGTERM) }

    /// Polls instead of `waitUntilExit`, which can hang when called from Swift concurrency on Linux.
    func waitForExit() async {
        while process.isRunning { try? await Task.sleep(for: .milliseconds(20)) }
    }

    /// True once /readyz answers 200: both servers reachable and partitions assigned.
    func isReady() async -> Bool { await Self.get("http://127.0.0.1:\(adminPort)/readyz")?.0 == 200 }

    func metrics() async -> String? { await Self.get("http://127.0.0.1:\(adminPort)/metrics")?.1 }

    var output: String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }

    static func get(_ url: String) async -> (Int, String)? {
        await withCheckedContinuation { continuation in
            let curl = Process()
            curl.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
            curl.arguments = ["-s", "-m", "2", "-w", "\n%{http_code}", url]
            let pipe = Pipe()
            curl.standardOutput = pipe
            curl.terminationHandler = { _ in
                let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
                continuation.resume(returning: Int(lines.last ?? "").map { ($0, lines.dropLast().joined(separator: "\n")) })
            }
            do { try curl.run() } catch { continuation.resume(returning: nil) }
        }
    }
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

/// Runs a shell command to completion. Foundation's Process never reports the exit of a
/// script that leaves a daemon behind (the daemon keeps its descriptors), so this uses
/// posix_spawn and waitpid, off the cooperative pool.
func shell(_ command: String) async -> Int32 {
    await withCheckedContinuation { continuation in
        DispatchQueue.global().async {
            var pid: pid_t = 0
            let args = ["/bin/sh", "-c", command]
            var argv = args.map { strdup($0) } + [nil]
            defer { argv.forEach { free($0) } }
            guard posix_spawn(&pid, "/bin/sh", nil, nil, &argv, environ) == 0 else { return continuation.resume(returning: -1) }
            var status: Int32 = 0
            waitpid(pid, &status, 0)
            continuation.resume(returning: (status >> 8) & 0xFF)
        }
    }
}

/// A port the kernel says is free (bind to 0, read it, close). Random picks collided with
/// ephemeral ports of the tests' own Kafka and Mongo connections.
func adminPort() -> Int {
    let (fd, port) = boundSocket()
    close(fd)
    return port
}

/// A socket bound to a free port on 127.0.0.1; the caller closes it.
func boundSocket() -> (fd: Int32, port: Int) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    precondition(bound, "no free port on 127.0.0.1")
    return (fd, Int(UInt16(bigEndian: address.sin_port)))
}
