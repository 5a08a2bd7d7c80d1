import Foundation

/// A TCP proxy in front of a MongoDB-wire server that takes the server away at an exact point
/// of the conversation: before a given command is forwarded, or right after its reply has
/// been forwarded. "Away" means every connection dropped and nothing listening on the port,
/// as when `mongod` dies; `restore()` listens again on the same port.
///
/// The point is found by reading OP_MSG requests (the command is the body's first key, the
/// collection its value) and matching replies by `responseTo`. Blocking sockets, two threads a
/// connection: a test tool, not a server.
public final class MongoFaultProxy: @unchecked Sendable {
    public enum Trigger: Sendable {
        /// The request is dropped unforwarded, and the server goes away.
        case before(command: String, collection: String)
        /// The request and its reply go through, then the server goes away.
        case afterReply(command: String, collection: String)
    }

    public let port: Int
    private let targetPort: Int
    private let lock = NSLock()
    private var listener: Int32 = -1
    private var sockets: Set<Int32> = []
    private var trigger: Trigger?
    private var awaitedReplies: Set<Int32> = []
    private var cuts = 0

    public var uri: String { "mongodb://127.0.0.1:\(port)" }

    public init(targetPort: Int) throws {
        self.targetPort = targetPort
        // SO_REUSEADDR from the first socket on: the connections it accepts inherit it, so that
        // their TIME_WAIT does not keep `restore()` from binding the port again.
        let (fd, port) = try LoopbackSocket.bind(port: 0)
        self.port = port
        try startListening(fd)
    }

    /// The next request matching `trigger` takes the server away (once).
    public func arm(_ trigger: Trigger) { locked { self.trigger = trigger } }

    /// How many times the server was taken away.
    public var cutCount: Int { locked { cuts } }

    public var isListening: Bool { locked { listener >= 0 } }

    /// Drops every connection and stops listening. The shutdowns happen under the lock: a
    /// descriptor still in `sockets` is still open (its pump removes it under the lock before
    /// closing it), so no number reused by another socket of this process is ever touched.
    public func cutOff() {
        locked {
            for fd in sockets { shutdown(fd, Int32(SHUT_RDWR)) }
            if listener >= 0 { shutdown(listener, Int32(SHUT_RDWR)) }  // its accept loop closes it: no other thread holds its number then
            sockets = []
            listener = -1
            trigger = nil
            awaitedReplies = []
            cuts += 1
        }
    }

    /// Listens again on the same port.
    public func restore() throws {
        guard !isListening else { return }
        try startListening(try LoopbackSocket.bind(port: port).fd)
    }

    deinit { cutOff() }

    private func startListening(_ fd: Int32) throws {
        guard listen(fd, 64) == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        locked { listener = fd }
        let thread = Thread { [self] in acceptLoop(fd) }
        thread.start()
    }

    private func acceptLoop(_ fd: Int32) {
        LoopbackSocket.acceptEach(fd) { client in
            let server = LoopbackSocket.connect(port: targetPort)
            let connected = server >= 0
            let admitted = locked { () -> Bool in
                guard connected, listener == fd else { return false }
                sockets.formUnion([client, server])
                return true
            }
            guard admitted else {
                close(client)
                if connected { close(server) }
                return
            }
            let pair = SocketPair(client, server)
            Thread { [self] in pump(from: client, to: server, requests: true, pair: pair) }.start()
            Thread { [self] in pump(from: server, to: client, requests: false, pair: pair) }.start()
        }
    }

    /// Forwards whole wire messages one way until either side closes.
    private func pump(from source: Int32, to destination: Int32, requests: Bool, pair: SocketPair) {
        defer {
            shutdown(source, Int32(SHUT_RDWR))
            shutdown(destination, Int32(SHUT_RDWR))
            locked {
                sockets.remove(source)
                sockets.remove(destination)
            }
            pair.finished()
        }
        while let message = Self.readMessage(source) {
            if requests {
                if decide(request: message) == .cut {
                    cutOff()
                    return
                }
                guard LoopbackSocket.writeAll(destination, message) else { return }
            } else {
                guard LoopbackSocket.writeAll(destination, message) else { return }
                let responseTo = Self.int32(message, at: 8)
                if locked({ awaitedReplies.remove(responseTo) != nil }) {
                    cutOff()
                    return
                }
            }
        }
    }

    private enum Decision { case forward, cut }

    private func decide(request message: [UInt8]) -> Decision {
        guard let (command, collection) = Self.command(of: message) else { return .forward }
        return locked {
            switch trigger {
            case .before(let c, let coll)? where c == command && coll == collection:
                return .cut
            case .afterReply(let c, let coll)? where c == command && coll == collection:
                trigger = nil
                awaitedReplies.insert(Self.int32(message, at: 4))
                return .forward
            default:
                return .forward
            }
        }
    }

    /// The command name and its string value (the collection) of an OP_MSG request.
    static func command(of message: [UInt8]) -> (String, String)? {
        // Header (16 bytes), opCode 2013, flag bits (4), then a kind-0 section: one BSON document.
        guard message.count > 26, int32(message, at: 12) == 2013, message[20] == 0 else { return nil }
        var i = 21 + 4  // the body's length
        guard message[i] == 0x02 else { return nil }  // the first element is a string
        i += 1
        guard let nameEnd = message[i...].firstIndex(of: 0) else { return nil }
        let name = String(decoding: message[i..<nameEnd], as: UTF8.self)
        let length = Int(int32(message, at: nameEnd + 1))
        let start = nameEnd + 5
        guard length > 0, start + length <= message.count else { return nil }
        return (name, String(decoding: message[start..<(start + length - 1)], as: UTF8.self))
    }

    private static func int32(_ bytes: [UInt8], at offset: Int) -> Int32 {
        guard offset + 4 <= bytes.count else { return -1 }
        return Int32(
            bitPattern: UInt32(bytes[offset]) | UInt32(bytes[offset + 1]) << 8 | UInt32(bytes[offset + 2]) << 16 | UInt32(bytes[offset + 3]) << 24)
    }

    private static func readMessage(_ fd: Int32) -> [UInt8]? {
        guard let header = readExactly(fd, 4) else { return nil }
        let length = Int(int32(header, at: 0))
        guard length >= 16, length <= 64 * 1_024 * 1_024, let rest = readExactly(fd, length - 4) else { return nil }
        return header + rest
    }

    private static func readExactly(_ fd: Int32, _ count: Int) -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: count)
        var got = 0
        while got < count {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress! + got, count - got) }
            guard n > 0 else { return nil }
            got += n
        }
        return buffer
    }

    private func locked<R>(_ body: () throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }
}
