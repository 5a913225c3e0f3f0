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
        try await LoopClient.with(port: port, group: group) { channel in
            try channel.pipeline.syncOperations.addHTTPClientHandlers()
            return HTTPLoadClient()
        } _: { client in
            var session = Session(client: client, port: port)
            return try await body(&session)
        }
    }

    struct Session {
        fileprivate let client: LoopClient<HTTPLoadClient>
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
            return try await client.request { $0.send(request, body: bytes, promise: $1) }
        }
    }
}

/// The handler behind `HTTPLoadConnection`, on the connection's event loop.
final class HTTPLoadClient: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    private var context: ChannelHandlerContext?
    private var request = OpenRequest<HTTPLoadConnection.Answer>()

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    /// Writes head, body and end with one flush, so one `write(2)` as a proxy sends a small request.
    func send(_ head: HTTPRequestHead, body: ByteBuffer?, promise: EventLoopPromise<HTTPLoadConnection.Answer>) {
        guard let context else {
            promise.fail(LoadError("no connection"))
            return
        }
        guard request.open(promise, answer: HTTPLoadConnection.Answer(status: 0, body: ByteBuffer())) else { return }
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        if let body { context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil) }
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard request.isOpen else { return }
        switch unwrapInboundIn(data) {
        case .head(let response):
            request.answer?.status = Int(response.status.code)
            request.answer?.retryAfter = response.headers.first(name: "retry-after")
        case .body(var chunk):
            request.answer?.body.writeBuffer(&chunk)
        case .end:
            request.succeed()
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        request.breakConnection("connection closed before the answer ended")
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        request.breakConnection("connection: \(error)")
        context.close(promise: nil)
    }
}

/// A failure of the generator itself (not of a request under load).
struct LoadError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
