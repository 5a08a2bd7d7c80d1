import Foundation

/// A TCP proxy that can cut its clients off from the server the way a network partition does:
/// while `partition()` holds, nothing goes through either way, no connection is closed, and a
/// new connection is accepted but never reaches the server, so neither side learns anything
/// from its socket (a closed connection would tell it at once; a lost path tells nothing).
/// `heal()` forwards what waited, closes included. Blocking sockets, two threads a
/// connection: a test tool, not a server.
public final class PartitionProxy: @unchecked Sendable {
    public let port: Int
    private let targetPort: Int
    private let condition = NSCondition()
    private var partitioned = false
    private var stopped = false
    private var listener: Int32
    private var sockets: Set<Int32> = []

    public init(targetPort: Int) throws {
        self.targetPort = targetPort
        let (fd, port) = try LoopbackSocket.bind(port: 0)
        guard listen(fd, 64) == 0 else {
            close(fd)
            throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
        }
        (listener, self.port) = (fd, port)
        Thread { [self] in LoopbackSocket.acceptEach(fd) { client in Thread { [self] in connectAndPump(client) }.start() } }.start()
    }

    /// Stops forwarding, without closing anything.
    public func partition() { locked { partitioned = true } }

    /// Forwards again, what waited first.
    public func heal() {
        locked { partitioned = false }
        condition.broadcast()
    }

    /// Closes every connection and the listener. The shutdowns happen under the lock: a
    /// descriptor still in `sockets` is still open (its pump removes it under the lock before
    /// closing it), so no number reused by another socket of this process is ever touched.
    public func stop() {
        locked {
            stopped = true
            for fd in sockets { shutdown(fd, Int32(SHUT_RDWR)) }
            sockets = []
            if listener >= 0 {
                shutdown(listener, Int32(SHUT_RDWR))  // its accept loop closes it: no other thread holds its number then
                listener = -1
            }
        }
        condition.broadcast()
    }

    deinit { stop() }

    /// Waits while partitioned; false once stopped.
    private func mayForward() -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while partitioned && !stopped { condition.wait() }
        return !stopped
    }

    private func connectAndPump(_ client: Int32) {
        // A connection made during a partition reaches the server only once it heals.
        let server = mayForward() ? LoopbackSocket.connect(port: targetPort) : -1
        let admitted = locked { () -> Bool in
            guard server >= 0, !stopped else { return false }
            sockets.formUnion([client, server])
            return true
        }
        guard admitted else {
            close(client)
            if server >= 0 { close(server) }
            return
        }
        let pair = SocketPair(client, server)
        Thread { [self] in pump(from: server, to: client, pair: pair) }.start()
        pump(from: client, to: server, pair: pair)
    }

    /// Forwards bytes one way until either side closes; a close waits out a partition too.
    private func pump(from source: Int32, to destination: Int32, pair: SocketPair) {
        var buffer = [UInt8](repeating: 0, count: 64 * 1_024)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(source, $0.baseAddress!, $0.count) }
            guard mayForward(), n > 0, LoopbackSocket.writeAll(destination, Array(buffer[0..<n])) else { break }
        }
        locked {
            if sockets.remove(source) != nil { shutdown(source, Int32(SHUT_RDWR)) }
            if sockets.remove(destination) != nil { shutdown(destination, Int32(SHUT_RDWR)) }
        }
        pair.finished()
    }

    private func locked<R>(_ body: () throws -> R) rethrows -> R {
        condition.lock()
        defer { condition.unlock() }
        return try body()
    }
}
