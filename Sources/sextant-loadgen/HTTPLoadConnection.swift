import NIOCore
import NIOHTTP1
import NIOPosix

/// One keep-alive HTTP/1.1 connection to 127.0.0.1: one request at a time, answer read whole.
/// A request is written and its answer gathered by a handler on the connection's event loop,
/// which completes a promise: the only async step a request takes is waiting for that promise
/// (an async channel's inbound stream and outbound writer cost the generator a tenth of a core at
/// 60,000 Zipkin spans/s, on the cores it shares with the server).
struct HTTPLoadConnection {
    struct Answer: Sendable {
        var status: Int
        var body: ByteBuffer
        var retryAfter: String?
    }

    /// Opens a connection and runs `body` with it; the connection is closed after.
    static func with<T>(
        port: Int, group: MultiThreadedEventLoopGroup, _ body: (inout Session) async throws -> T
    ) async throws -> T {
        let (channel, client) = try await ClientBootstrap(group: group)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    let client = HTTPLoadClient()
                    try channel.pipeline.syncOperations.addHandler(client)
                    return (channel, NIOLoopBound(client, eventLoop: channel.eventLoop))
                }
            }
        var session = Session(channel: channel, client: client, port: port)
        do {
            let result = try await body(&session)
            try? await channel.close()
            return result
        } catch {
            try? await channel.close()
            throw error
        }
    }

    struct Session {
        fileprivate let channel: any Channel
        fileprivate let client: NIOLoopBound<HTTPLoadClient>
        let port: Int

        /// Sends one request and reads its whole answer.
        mutating func send(
            method: HTTPMethod, path: String, contentType: String?, body: [UInt8]?,
            extraHeaders: [(String, String)] = []
        ) async throws -> Answer {
            var head = HTTPRequestHead(version: .http1_1, method: method, uri: path)
            head.headers.add(name: "host", value: "127.0.0.1:\(port)")
            if let contentType { head.headers.add(name: "content-type", value: contentType) }
            if let body { head.headers.add(name: "content-length", value: "\(body.count)") }
            for (name, value) in extraHeaders { head.headers.add(name: name, value: value) }
            let bytes = body.map { ByteBuffer(bytes: $0) }
            let request = head
            let loop = channel.eventLoop
            let promise = loop.makePromise(of: Answer.self)
            let client = self.client
            if loop.inEventLoop {
                client.value.send(request, body: bytes, promise: promise)
            } else {
                loop.execute { client.value.send(request, body: bytes, promise: promise) }
            }
            return try await promise.futureResult.get()
        }
    }
}

/// The handler behind `HTTPLoadConnection`, on the connection's event loop.
final class HTTPLoadClient: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    private var context: ChannelHandlerContext?
    private var open: (promise: EventLoopPromise<HTTPLoadConnection.Answer>, answer: HTTPLoadConnection.Answer)?
    private var closed = false

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    /// Writes head, body and end with one flush, so one `write(2)` as a proxy sends a small request.
    func send(_ head: HTTPRequestHead, body: ByteBuffer?, promise: EventLoopPromise<HTTPLoadConnection.Answer>) {
        guard let context, open == nil, !closed else {
            promise.fail(LoadError(closed ? "connection closed" : "a request is already open"))
            return
        }
        open = (promise, HTTPLoadConnection.Answer(status: 0, body: ByteBuffer()))
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        if let body { context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil) }
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard open != nil else { return }
        switch unwrapInboundIn(data) {
        case .head(let response):
            open!.answer.status = Int(response.status.code)
            open!.answer.retryAfter = response.headers.first(name: "retry-after")
        case .body(var chunk):
            open!.answer.body.writeBuffer(&chunk)
        case .end:
            let call = open!
            open = nil
            call.promise.succeed(call.answer)
        }
    }

    private func fail(_ why: String) {
        guard let call = open else { return }
        open = nil
        call.promise.fail(LoadError(why))
    }

    func channelInactive(context: ChannelHandlerContext) {
        closed = true
        fail("connection closed before the answer ended")
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        closed = true
        fail("connection: \(error)")
        context.close(promise: nil)
    }
}

/// A failure of the generator itself (not of a request under load).
struct LoadError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
