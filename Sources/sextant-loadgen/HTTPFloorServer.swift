import NIOCore
import NIOHTTP1
import NIOPosix

/// The HTTP floor (`--modes floor`): a server on the NIO stack Sextant's receivers are built on that
/// reads each request's body whole and answers as Sextant would, storing and decoding nothing.
/// Stepped with the same generator, bodies and connections as Sextant, it measures what receiving
/// the bytes alone costs on this machine: no Sextant can take a channel faster than its floor.
///
/// One `ChannelInboundHandler` per connection, on the event loop that reads it (no task, no hop):
/// the cheapest way to serve HTTP/1.1 with NIO.
enum HTTPFloorServer {
    /// Serves on 127.0.0.1:`port` until the process is stopped.
    static func run(port: Int) async throws {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.backlog, value: 256)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(FloorHandler())
                }
            }
            .bind(host: "127.0.0.1", port: port).get()
        try await channel.closeFuture.get()
    }
}

/// Answers one request at a time once its body is read: 202 to Zipkin, the access-log receiver's
/// JSON (every line accepted) to access logs, an empty export response to OTLP/HTTP, 200 to
/// `/readyz`, 404 to anything else.
private final class FloorHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private var path = ""
    private var keepAlive = true
    private var newlines = 0
    private var endsInNewline = true

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
            keepAlive = head.isKeepAlive
            newlines = 0
            endsInNewline = true
        case .body(let buffer):
            guard path == "/api/v1/accesslogs", buffer.readableBytes > 0 else { return }
            buffer.withUnsafeReadableBytes { bytes in
                for byte in bytes where byte == UInt8(ascii: "\n") { newlines += 1 }
                endsInNewline = bytes.last == UInt8(ascii: "\n")
            }
        case .end:
            respond(context: context)
        }
    }

    private func respond(context: ChannelHandlerContext) {
        var status = HTTPResponseStatus.ok
        var body = ""
        var type: String?
        switch path {
        case "/api/v2/spans":
            status = .accepted
        case "/api/v1/accesslogs":
            let lines = newlines + (endsInNewline ? 0 : 1)
            body = "{\"accepted\":\(lines),\"calls\":\(lines),\"connections\":0,\"rejected\":0,\"errors\":[]}"
            type = "application/json"
        case "/v1/traces", "/v1/logs":
            type = "application/x-protobuf"
        case "/readyz":
            body = "ok\n"
        default:
            status = .notFound
        }
        var headers = HTTPHeaders()
        headers.add(name: "content-length", value: "\(body.utf8.count)")
        if let type { headers.add(name: "content-type", value: type) }
        if !keepAlive { headers.add(name: "connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        if !body.isEmpty {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
        }
        let written = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive {
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
            written.whenComplete { _ in bound.value.close(promise: nil) }
        }
    }
}
