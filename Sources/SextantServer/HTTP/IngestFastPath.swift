import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTPTypes
import SextantIngest
import SextantModel
import SextantStore
import SextantWire
import SwiftProtobuf

/// An ingest route answered from the channel pipeline (`IngestFastPath`).
struct FastIngestRoute: Sendable {
    /// The path it answers `POST` on, without the query.
    var path: String
    /// The channel its records are counted under.
    var channel: String
    /// Decodes a body (as sent, once its `Content-Encoding` is undone) into a batch; `memo` is the
    /// connection's, kept from one request to the next.
    var decode: @Sendable (_ request: HTTPRequest, _ body: [UInt8], _ memo: inout Memo) throws -> IngestBatch
    /// The answer to a committed batch: status, content type and body.
    var answer: @Sendable (IngestBatch) throws -> (HTTPResponse.Status, String?, ByteBuffer?)

    /// `POST /api/v2/spans` (Zipkin's port).
    static let zipkinSpans = FastIngestRoute(
        path: "/api/v2/spans", channel: "zipkin",
        decode: { request, body, _ in
            let isProtobuf = try IngestController.zipkinIsProtobuf(contentType: request.headerFields[.contentType])
            return try IngestController.decodeZipkin(body, isProtobuf: isProtobuf)
        },
        answer: { batch in
            // The limits may have rejected spans the decoder took (a timestamp too far ahead).
            guard batch.rejected.isEmpty else { throw IngestController.zipkinRejection(batch) }
            return (.accepted, nil, nil)
        })

    /// `POST /api/v1/accesslogs` (the HTTP API's port).
    static let accessLogs = FastIngestRoute(
        path: "/api/v1/accesslogs", channel: "accesslog",
        decode: { request, body, memo in
            // A shipper names the same proxy in every upload: its query is read once.
            let target = request.path ?? ""
            let proxy: WorkloadIdentity?
            if let last = memo.accessLogProxy, last.target == target {
                proxy = last.proxy
            } else {
                // Read as the router reads a request's query.
                let query = URI(target).queryParameters
                proxy = try IngestController.accessLogProxy { query[$0[...]] }
                memo.accessLogProxy = (target, proxy)
            }
            return EnvoyAccessLogDecoder(defaultProxy: proxy).decode(lines: body)
        },
        answer: { batch in
            let (status, body) = try IngestController.accessLogAnswer(batch)
            return (status, "application/json", body)
        })

    /// `POST /v1/traces` in binary protobuf (the OTLP/HTTP port); OTLP/JSON goes to the router.
    static let otlpTraces = FastIngestRoute(
        path: "/v1/traces", channel: "otlp_traces",
        decode: { request, body, _ in
            let mime = request.headerFields[.contentType].map(IngestController.mime)
            guard mime == "application/x-protobuf" || mime == "application/protobuf" else { throw Declined() }
            return try OTLPTraceDecoder().decode(protobuf: body)
        },
        answer: { batch in
            // With a partial success when the limits rejected spans the decoder took.
            let answer = OTLPIngest.tracesAnswer(batch)
            return (.ok, "application/x-protobuf", ByteBuffer(bytes: try answer.serializedBytes() as [UInt8]))
        })

    /// Not for this way: the router takes the request.
    struct Declined: Error {}

    /// What a connection's last request resolved, for its next one that says the same.
    struct Memo {
        /// The access-log proxy named by the last request target it was read from.
        var accessLogProxy: (target: String, proxy: WorkloadIdentity?)?
    }
}

/// Serves the busiest ingest routes straight from the HTTP/1.1 pipeline, in front of Hummingbird:
/// a request's body is gathered, decoded and queued for the writer on the event loop that read it,
/// and answered there once committed, with no task, no body stream and no hop to the global pool.
///
/// Only the plain case takes this way: an authorised `POST` of a declared length within the body
/// limit, every record decoded, the writer and memory guard willing (records the limits reject
/// afterwards, such as a timestamp too far ahead, are answered as the router answers them). Anything else (a bad body, a
/// rejected record, a refusal, a missing token, a chunked body, a request behind another still
/// being answered by the router) goes on to the router unchanged, body and all, and is answered
/// there as before, so both ways give the same answers.
final class IngestFastPath: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let routes: [FastIngestRoute]
    private let sink: IngestSink
    private let limits: CollectorConfiguration.Server
    private let tokens: AccessTokens
    private let logger: Logger

    private enum State {
        /// Between requests; `routed` counts requests handed to the router and not yet answered.
        case idle
        /// Gathering the body of a request this handler takes.
        case gathering(HTTPRequest, FastIngestRoute, ByteBuffer)
        /// A request's answer waits for its commit; parts of later requests wait in `held`.
        case committing
        /// Passing a request's parts to the router.
        case passing
    }

    private var state = State.idle
    /// Requests passed to the router whose answers have not ended yet.
    private var routed = 0
    /// Parts read while an answer waits for its commit, replayed after it.
    private var held: [HTTPRequestPart] = []
    /// Bytes reserved with the memory guard for the request being gathered or committed.
    private var bodyReservation = 0
    /// Whether this connection is counted as a sender by the writer: it has queued a batch, and it
    /// sends nothing more before its answer (pipelined requests wait in `held`).
    private var isSender = false
    private var memo = FastIngestRoute.Memo()

    init(
        routes: [FastIngestRoute], sink: IngestSink, limits: CollectorConfiguration.Server, tokens: AccessTokens,
        logger: Logger
    ) {
        self.routes = routes
        self.sink = sink
        self.limits = limits
        self.tokens = tokens
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        read(unwrapInboundIn(data), context: context)
    }

    private func read(_ part: HTTPRequestPart, context: ChannelHandlerContext) {
        switch (state, part) {
        case (.committing, _):
            held.append(part)
        case (.idle, .head(let request)):
            if routed == 0, let (route, declared) = take(request) {
                state = .gathering(request, route, context.channel.allocator.buffer(capacity: declared))
            } else {
                pass(part, context: context)
                state = .passing
            }
        case (.gathering(let request, let route, var body), .body(var chunk)):
            state = .idle  // the buffer is not shared while it grows
            body.writeBuffer(&chunk)
            state = .gathering(request, route, body)
        case (.gathering(let request, let route, let body), .end(let trailers)):
            state = .idle
            serve(request, route: route, body: body, trailers: trailers, context: context)
        case (.passing, .end):
            pass(part, context: context)
            state = .idle
        default:
            pass(part, context: context)
        }
    }

    /// The route and declared length of a request this handler may take, if any; reserves twice
    /// the body while it is read and handled, as the router does.
    private func take(_ request: HTTPRequest) -> (FastIngestRoute, Int)? {
        guard request.method == .post, let target = request.path else { return nil }
        let path = target.firstIndex(of: "?").map { target[..<$0] } ?? target[...]
        guard let route = routes.first(where: { $0.path == path }) else { return nil }
        let fields = request.headerFields
        guard let length = fields[.contentLength].flatMap({ Int($0) }), length >= 0, length <= limits.maxBodyBytes,
            fields[.expect] == nil,
            tokens.allows(.ingest, authorization: fields[.authorization]),
            (try? sink.memory.reserve(2 * length)) != nil
        else { return nil }
        bodyReservation = 2 * length
        return (route, length)
    }

    private func pass(_ part: HTTPRequestPart, context: ChannelHandlerContext) {
        if case .head = part { routed += 1 }
        context.fireChannelRead(wrapInboundOut(part))
    }

    /// Decodes and queues the batch, then answers once it is committed; hands the request to the
    /// router instead when anything is not plain.
    private func serve(
        _ request: HTTPRequest, route: FastIngestRoute, body raw: ByteBuffer, trailers: HTTPFields?,
        context: ChannelHandlerContext
    ) {
        var reserved = bodyReservation
        bodyReservation = 0
        let submission: IngestSink.Submission
        do {
            let decoded = try BodyDecompressor.decode(
                raw, contentEncoding: request.headerFields[.contentEncoding], limit: limits.maxDecompressedBytes)
            let decodedReservation = MemoryGuard.decodedBytesPerBodyByte * decoded.readableBytes
            try sink.memory.reserve(decodedReservation)
            reserved += decodedReservation
            let batch = try route.decode(request, Array(buffer: decoded), &memo)
            guard batch.rejected.isEmpty else { throw FastIngestRoute.Declined() }
            if !isSender {
                isSender = true
                sink.writer.senderOpened()
            }
            submission = try sink.submit(consume batch, channel: route.channel, fromSender: true)
        } catch {
            // The router answers it, with the same checks, and counts it.
            if reserved > 0 { sink.memory.release(reserved) }
            pass(.head(request), context: context)
            if raw.readableBytes > 0 { pass(.body(raw), context: context) }
            pass(.end(trailers), context: context)
            return
        }
        state = .committing
        let reservation = reserved
        let sink = self.sink
        let logger = self.logger
        let loop = context.eventLoop
        let bound = NIOLoopBound((handler: self, context: context), eventLoop: loop)
        // Called on the writer's thread: the rest (counting, forwarding, the answer) is the loop's.
        submission.receipt.whenCommitted { outcome in
            loop.execute {
                sink.memory.release(reservation)
                let answer: (HTTPResponse.Status, HTTPFields, ByteBuffer?)
                do {
                    let batch = sink.finish(submission, summary: try outcome.get())
                    let (status, type, body) = try route.answer(batch)
                    var fields = HTTPFields()
                    if let type { fields[.contentType] = type }
                    answer = (status, fields, body)
                } catch {
                    sink.count(error, channel: route.channel)
                    let mapped = HTTPErrorMapping.httpError(error, logger: logger)
                    let body = (try? JSONResponse.body(ErrorAnswer(error: .init(message: mapped.body ?? "")))) ?? ByteBuffer()
                    var fields = mapped.headers
                    fields[.contentType] = "application/json; charset=utf-8"
                    answer = (mapped.status, fields, body)
                }
                bound.value.handler.respond(answer, context: bound.value.context)
            }
        }
    }

    /// Writes an answer, then reads on with what arrived meanwhile.
    private func respond(_ answer: (HTTPResponse.Status, HTTPFields, ByteBuffer?), context: ChannelHandlerContext) {
        guard case .committing = state else { return }  // the connection went away meanwhile
        var fields = answer.1
        fields[.server] = "sextant"
        fields[.contentLength] = String(answer.2?.readableBytes ?? 0)
        context.write(wrapOutboundOut(.head(HTTPResponse(status: answer.0, headerFields: fields))), promise: nil)
        if let body = answer.2, body.readableBytes > 0 { context.write(wrapOutboundOut(.body(body)), promise: nil) }
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        state = .idle
        let waiting = held
        held = []
        for part in waiting { read(part, context: context) }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) { routed -= 1 }
        context.write(data, promise: promise)
    }

    func channelInactive(context: ChannelHandlerContext) {
        // An answer still committing is not written; the batch is stored all the same.
        if case .committing = state { state = .idle }
        if case .gathering = state {
            sink.memory.release(bodyReservation)
            bodyReservation = 0
            state = .idle
        }
        held = []
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        if isSender {
            isSender = false
            sink.writer.senderClosed()
        }
    }

    /// Hummingbird's error body, `{"error":{"message":…}}`.
    private struct ErrorAnswer: Encodable {
        struct Message: Encodable { var message: String }
        var error: Message
    }
}
