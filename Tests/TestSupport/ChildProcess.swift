import Foundation

/// The package's root, for built binaries and scripts.
public let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// A built executable of this package (`<NAME>_BIN` overrides, e.g. ARCHIVER_BIN).
public func binary(_ name: String) -> String {
    ProcessInfo.processInfo.environment["\(name.uppercased())_BIN"] ?? packageRoot.appendingPathComponent(".build/debug/\(name)").path
}

/// One of the package's executables as a child process with its output in a log file, for
/// crash, signal and outage scenarios.
open class ChildProcess: @unchecked Sendable {
    public let process = Process()
    public let log: URL

    /// `environment` is added to this process's own; an empty value unsets the variable.
    public init(executable: String, arguments: [String], logName: String, environment: [String: String] = [:]) throws {
        log = FileManager.default.temporaryDirectory.appendingPathComponent("\(logName)-\(UUID().uuidString.prefix(6)).log")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, added in added }.filter { !$0.value.isEmpty }
        }
        let handle = try FileHandle(forWritingTo: log)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
    }

    public func kill9() async {
        kill(process.processIdentifier, SIGKILL)
        await waitForExit()
    }

    public func terminate() { kill(process.processIdentifier, SIGTERM) }

    /// Polls instead of `waitUntilExit`, which can hang when called from Swift concurrency on Linux.
    public func waitForExit() async {
        while process.isRunning { try? await Task.sleep(for: .milliseconds(20)) }
    }

    public var output: String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }

    /// GET with curl: status and body, nil if nothing answered; with `bearer`, as that token.
    public static func get(_ url: String, bearer: String? = nil) async -> (Int, String)? {
        await withCheckedContinuation { continuation in
            let curl = Process()
            curl.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
            curl.arguments = ["-s", "-m", "2", "-w", "\n%{http_code}", url] + (bearer.map { ["-H", "Authorization: Bearer \($0)"] } ?? [])
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

/// Polls `condition` until it holds or `seconds` pass; returns its last answer.
public func eventually(_ seconds: Double = 30, _ condition: () async throws -> Bool) async throws -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if try await condition() { return true }
        try await Task.sleep(for: .milliseconds(100))
    }
    return try await condition()
}

/// Runs a shell command to completion. Foundation's Process never reports the exit of a
/// script that leaves a daemon behind (the daemon keeps its descriptors), so this uses
/// posix_spawn and waitpid, off the cooperative pool.
public func shell(_ command: String) async -> Int32 {
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
public func freePort() -> Int {
    let (fd, port) = boundSocket()
    close(fd)
    return port
}

/// A socket bound to a free port on 127.0.0.1; the caller closes it.
public func boundSocket() -> (fd: Int32, port: Int) {
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
