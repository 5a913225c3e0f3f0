import NIOCore
import NIOHTTP1
import NIOPosix

/// One keep-alive HTTP/1.1 connection to 127.0.0.1: one request at a time, answer read whole.
struct HTTPLoadConnection {
    struct Answer {
        var status: Int
        var body: ByteBuffer
        var retryAfter: String?
    }

    private let channel: NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>

    private init(channel: NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>) {
        self.channel = channel
    }

    /// Opens a connection and runs `body` with it; the connection is closed after.
    static func with<T>(
        port: Int, group: MultiThreadedEventLoopGroup, _ body: (inout Session) async throws -> T
    ) async throws -> T {
        let channel = try await ClientBootstrap(group: group)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(
                        wrappingChannelSynchronously: channel)
                }
            }
        return try await channel.executeThenClose { inbound, outbound in
            var session = Session(inbound: inbound.makeAsyncIterator(), outbound: outbound, port: port)
            return try await body(&session)
        }
    }

    struct Session {
        var inbound: NIOAsyncChannelInboundStream<HTTPClientResponsePart>.AsyncIterator
        let outbound: NIOAsyncChannelOutboundWriter<HTTPClientRequestPart>
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
            // One write, so one flush and one `write(2)` of head and body together, as a proxy sends
            // a small request (three would cost the generator two more system calls a request).
            var parts: [HTTPClientRequestPart] = [.head(head)]
            if let body { parts.append(.body(.byteBuffer(ByteBuffer(bytes: body)))) }
            parts.append(.end(nil))
            try await outbound.write(contentsOf: parts)
            var status = 0
            var retryAfter: String?
            var answer = ByteBuffer()
            while let part = try await inbound.next() {
                switch part {
                case .head(let response):
                    status = Int(response.status.code)
                    retryAfter = response.headers.first(name: "retry-after")
                case .body(var chunk):
                    answer.writeBuffer(&chunk)
                case .end:
                    return Answer(status: status, body: answer, retryAfter: retryAfter)
                }
            }
            throw LoadError("connection closed before the answer ended")
        }
    }
}

/// A failure of the generator itself (not of a request under load).
struct LoadError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
