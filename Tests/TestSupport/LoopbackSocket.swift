import Foundation

/// Blocking TCP sockets on 127.0.0.1, for the tests' proxies.
public enum LoopbackSocket {
    /// A socket bound to `port` (0: one the kernel picks), with SO_REUSEADDR: the connections it
    /// accepts inherit it, so that their TIME_WAIT does not keep a later bind of the port away.
    public static func bind(port: Int) throws -> (fd: Int32, port: Int) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = address(port)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else {
            let error = errno
            close(fd)
            throw POSIXError(POSIXErrorCode(rawValue: error) ?? .EIO)
        }
        return (fd, Int(UInt16(bigEndian: address.sin_port)))
    }

    /// Hands each connection accepted on `listener` to `handle` until the listener is shut
    /// down, then closes it. Only this loop closes it: a thread that closed it while `accept`
    /// still waited could see its number reused by another socket, and accept from that one.
    public static func acceptEach(_ listener: Int32, _ handle: (Int32) -> Void) {
        while true {
            let client = accept(listener, nil, nil)
            guard client >= 0 else {
                close(listener)
                return
            }
            handle(client)
        }
    }

    /// Whether something listens on `port` (a connection is made and closed).
    public static func accepts(port: Int) -> Bool {
        let fd = connect(port: port)
        if fd >= 0 { close(fd) }
        return fd >= 0
    }

    /// A connected socket, or -1.
    static func connect(port: Int) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = address(port)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        guard connected else {
            close(fd)
            return -1
        }
        return fd
    }

    public static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { return false }
            sent += n
        }
        return true
    }

    private static func address(_ port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        return address
    }
}

/// A proxied connection's two descriptors, closed once, by the second of its pumps to end.
final class SocketPair: @unchecked Sendable {
    private let lock = NSLock()
    private var running = 2
    private let fds: (Int32, Int32)
    init(_ a: Int32, _ b: Int32) { fds = (a, b) }
    func finished() {
        lock.lock()
        running -= 1
        let last = running == 0
        lock.unlock()
        if last {
            close(fds.0)
            close(fds.1)
        }
    }
}
