import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// How the simulation's requests reach the services. `commerce simulate` runs on the machine it
/// measures, so its own CPU per request counts: URLSession (libcurl underneath on Linux) spent
/// several hundred µs per request, which at hundreds of sagas a second took a core from the
/// services. Plain `http://` goes through `HTTPPool` (SwiftNIO, kept-alive connections);
/// `https://` still through URLSession.
protocol HTTPTransport: Sendable {
    /// Status and body; throws `TransportFailure` when no answer came (worth retrying).
    func send(method: String, url: URL, body: Data?, headers: [(String, String)], timeout: Duration) async throws -> (Int, Data)
}

/// No HTTP answer: refused, reset, closed or timed out. The caller retries these.
struct TransportFailure: Error, CustomStringConvertible {
    let description: String
}

/// HTTP/1.1 over SwiftNIO: per host, a pool of kept-alive connections, one request at a time on each.
final class HTTPPool: HTTPTransport {
    private let idle = Mutex<[String: [HTTPConnection]]>([:])
    private let group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton

    func send(method: String, url: URL, body: Data?, headers: [(String, String)], timeout: Duration) async throws -> (Int, Data) {
        guard let host = url.host else { throw TransportFailure(description: "no host in \(url)") }
        let port = url.port ?? 80
        let origin = "\(host):\(port)"
        var target = url.path.isEmpty ? "/" : url.path
        if let query = url.query { target += "?\(query)" }
        var head = HTTPRequestHead(version: .http1_1, method: HTTPMethod(rawValue: method), uri: target)
        head.headers.add(name: "Host", value: origin)
        for (name, value) in headers { head.headers.add(name: name, value: value) }
        head.headers.add(name: "Content-Length", value: String(body?.count ?? 0))
        let connection = try await take(origin, host: host, port: port)
        do {
            let (status, data, keepAlive) = try await connection.send(head, body: body.map { ByteBuffer(bytes: $0) }, timeout: timeout)
            if keepAlive { idle.withLock { $0[origin, default: []].append(connection) } } else { connection.close() }
            return (status, data)
        } catch {
            connection.close()
            throw TransportFailure(description: "\(method) \(url.absoluteString): \(error)")
        }
    }

    private func take(_ origin: String, host: String, port: Int) async throws -> HTTPConnection {
        if let pooled = idle.withLock({ $0[origin]?.popLast() }) { return pooled }
        do {
            return try await HTTPConnection.connect(host: host, port: port, group: group)
        } catch {
            throw TransportFailure(description: "cannot connect to \(origin): \(error)")
        }
    }

    deinit {
        for connection in idle.withLock({ $0.values.flatMap { $0 } }) { connection.close() }
    }
}

/// One kept-alive HTTP/1.1 connection; `send` is called by one task at a time.
final class HTTPConnection: Sendable {
    private let channel: any Channel
    private let handler: NIOLoopBound<ResponseHandler>

    private init(channel: any Channel, handler: NIOLoopBound<ResponseHandler>) {
        self.channel = channel
        self.handler = handler
    }

    static func connect(host: String, port: Int, group: any EventLoopGroup) async throws -> HTTPConnection {
        let channel = try await ClientBootstrap(group: group)
            .connectTimeout(.seconds(5))
            // TCP level: `.socketOption(.tcp_nodelay)` is SOL_SOCKET option 1, SO_DEBUG, which
            // needs CAP_NET_ADMIN (refused in a container; silently set when root on a host).
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(ResponseHandler())
                }
            }
            .connect(host: host, port: port).get()
        let handler = try await channel.eventLoop.submit {
            NIOLoopBound(try channel.pipeline.syncOperations.handler(type: ResponseHandler.self), eventLoop: channel.eventLoop)
        }.get()
        return HTTPConnection(channel: channel, handler: handler)
    }

    /// Status, body, and whether the connection may be used again.
    func send(_ head: HTTPRequestHead, body: ByteBuffer?, timeout: Duration) async throws -> (Int, Data, Bool) {
        let promise = channel.eventLoop.makePromise(of: ResponseHandler.Answer.self)
        let nanoseconds = timeout.components.seconds * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000
        channel.eventLoop.execute { [handler, channel] in
            handler.value.send(head, body: body, promise: promise)
            let timer = channel.eventLoop.scheduleTask(in: .nanoseconds(nanoseconds)) {
                promise.fail(TransportFailure(description: "no answer within \(timeout)"))
                channel.close(promise: nil)
            }
            promise.futureResult.whenComplete { _ in timer.cancel() }
        }
        let answer = try await promise.futureResult.get()
        return (answer.status, answer.body, answer.keepAlive)
    }

    func close() { channel.close(promise: nil) }
}

/// Collects one response at a time; fails the request in flight when the connection breaks.
final class ResponseHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    struct Answer: Sendable {
        var status: Int
        var body: Data
        var keepAlive: Bool
    }

    private var context: ChannelHandlerContext?
    private var promise: EventLoopPromise<Answer>?
    private var answer = Answer(status: 0, body: Data(), keepAlive: true)

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func send(_ head: HTTPRequestHead, body: ByteBuffer?, promise: EventLoopPromise<Answer>) {
        guard let context, context.channel.isActive, self.promise == nil else {
            promise.fail(TransportFailure(description: "connection closed"))
            return
        }
        self.promise = promise
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        if let body { context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil) }
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            answer = Answer(status: Int(head.status.code), body: Data(), keepAlive: head.isKeepAlive)
        case .body(let buffer):
            answer.body.append(contentsOf: buffer.readableBytesView)
        case .end:
            let promise = self.promise
            self.promise = nil
            promise?.succeed(answer)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(error)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(TransportFailure(description: "connection closed"))
        context.fireChannelInactive()
    }

    private func fail(_ error: any Error) {
        let promise = self.promise
        self.promise = nil
        promise?.fail(error)
    }
}

/// `https://` endpoints: URLSession, as before.
final class URLSessionTransport: HTTPTransport {
    let session: URLSession

    init(concurrency: Int) {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.httpMaximumConnectionsPerHost = max(4, concurrency)
        configuration.timeoutIntervalForRequest = 60
        session = URLSession(configuration: configuration)
    }

    func send(method: String, url: URL, body: Data?, headers: [(String, String)], timeout: Duration) async throws -> (Int, Data) {
        var request = URLRequest(url: url)
        request.httpMethod = method
        request.httpBody = body
        request.timeoutInterval = Double(timeout.components.seconds) + 1
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        do {
            let (data, response) = try await session.data(for: request)
            return ((response as? HTTPURLResponse)?.statusCode ?? 0, data)
        } catch let error as URLError {
            throw TransportFailure(description: "\(method) \(url.absoluteString): \(error.localizedDescription)")
        }
    }
}
