import GRPCCore
import Logging
import NIOCore
import NIOHPACK
import NIOHTTP2
import SextantIngest
import SextantModel
import SwiftProtobuf

/// Serves the two busiest gRPC methods straight from their HTTP/2 stream's pipeline, in front of
/// grpc-swift: OTLP trace exports and Envoy's ALS streams. Messages are deframed, decoded and
/// queued for the writer on the event loop that read them, and answered there once committed,
/// with no task, no message streams and no interceptors: grpc-swift's handling of a call or a
/// message costs more than decoding the 50 records it carries.
///
/// Only the plain case takes this way: `POST` of `TraceService/Export` or
/// `AccessLogService/StreamAccessLogs` as `application/grpc` without compression, with the ingest
/// token when one is set. Any other call goes on to grpc-swift unchanged and is answered there.
/// - An export is gathered whole first; one that is not a single uncompressed message within the
///   size limit, does not decode, or is refused by the writer or memory guard, also goes on to
///   grpc-swift, frames and all, so both ways give the same answers. Spans rejected one by one
///   are answered here, in `partial_success` as grpc-swift's way answers them.
/// - An ALS stream is served here from its first message on, as `AccessLogService` serves it
///   (`ALSStream`, `StreamWindow`): each message is committed behind the ones before it, at most
///   the stream window waits for its commit (reading pauses while it is full), and the stream
///   is answered once its end and every commit are in; the first error ends it with its status
///   once the messages before it are committed.
///
/// The handler sits first in each stream's pipeline (`HTTP2ServerTransport`'s stream callback),
/// before grpc-swift's own stream handler, which never hears of a call taken here.
final class GRPCFastPath: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias InboundOut = HTTP2Frame.FramePayload
    typealias OutboundIn = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    /// What every stream's handler shares.
    struct Settings: Sendable {
        var sink: IngestSink
        var tokens: AccessTokens
        /// The largest request message taken, as grpc-swift's `maxRequestPayloadSize`.
        var maxMessageBytes: Int
        /// How much of one ALS stream may wait for its commit.
        var window: StreamWindow
        var directory: ProxyDirectory
        var logger: Logger
    }

    static let exportPath = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
    static let accessLogPath = "/envoy.service.accesslog.v3.AccessLogService/StreamAccessLogs"
    static let traceChannel = "otlp_traces"

    private enum State {
        /// No frame read yet.
        case idle
        /// Gathering the message of an export this handler takes.
        case gathering(HTTP2Frame.FramePayload.Headers, ByteBuffer)
        /// The export's answer waits for its commit.
        case committing
        /// Serving an ALS stream (`stream`).
        case streaming
        /// Passing the call's frames on to grpc-swift.
        case passing
        /// Answered.
        case done
    }

    private let settings: Settings
    private var state = State.idle
    private var stream: StreamState?

    init(settings: Settings) {
        self.settings = settings
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch (state, frame) {
        case (.idle, .headers(let headers)):
            switch takes(headers) {
            case Self.exportPath?:
                state = .gathering(headers, context.channel.allocator.buffer(capacity: 0))
            case Self.accessLogPath?:
                state = .streaming
                stream = StreamState(decoder: ALSStream(directory: settings.directory), settings.window)
            default:
                state = .passing
                context.fireChannelRead(data)
            }
        case (.gathering(let headers, var body), .data(let payload)):
            state = .idle  // the buffer is not shared while it grows
            if case .byteBuffer(var chunk) = payload.data { body.writeBuffer(&chunk) }
            if body.readableBytes > settings.maxMessageBytes + Self.prefixBytes {
                // grpc-swift refuses it, in its words.
                pass(headers, body, endStream: payload.endStream, context: context)
            } else if payload.endStream {
                serveExport(headers, body: body, context: context)
            } else {
                state = .gathering(headers, body)
            }
        case (.gathering(let headers, let body), _):
            // Trailers or anything unusual from the client: grpc-swift's to judge.
            pass(headers, body, endStream: false, context: context)
            context.fireChannelRead(data)
        case (.streaming, .data(let payload)):
            if case .byteBuffer(var chunk) = payload.data { stream?.unread.writeBuffer(&chunk) }
            if payload.endStream { stream?.ended = true }
            pump(context: context)
        case (.streaming, .headers(let trailers)):
            if trailers.endStream { stream?.ended = true }
            pump(context: context)
        case (.committing, _), (.done, _), (.streaming, _):
            break
        default:
            state = .passing
            context.fireChannelRead(data)
        }
    }

    /// The method of a call whose headers are the plain case this handler takes, if they are.
    private func takes(_ frame: HTTP2Frame.FramePayload.Headers) -> String? {
        let headers = frame.headers
        guard !frame.endStream, let path = headers.first(name: ":path"),
            path == Self.exportPath || path == Self.accessLogPath,
            headers.first(name: ":method") == "POST",
            let type = headers.first(name: "content-type"),
            type == "application/grpc" || type == "application/grpc+proto"
        else { return nil }
        if let encoding = headers.first(name: "grpc-encoding"), encoding != "identity" { return nil }
        guard settings.tokens.allows(.ingest, authorization: headers.first(name: "authorization")) else { return nil }
        return path
    }

    /// Hands what was gathered to grpc-swift, which reads on from there.
    private func pass(
        _ headers: HTTP2Frame.FramePayload.Headers, _ body: ByteBuffer, endStream: Bool, context: ChannelHandlerContext
    ) {
        state = .passing
        context.fireChannelRead(wrapInboundOut(.headers(headers)))
        if body.readableBytes > 0 || endStream {
            context.fireChannelRead(wrapInboundOut(.data(.init(data: .byteBuffer(body), endStream: endStream))))
        }
    }

    // MARK: - Messages

    /// A gRPC message's prefix: a compression flag and a four-byte big-endian length.
    static let prefixBytes = 5

    /// What the front of a stream's unread bytes holds.
    enum Frame: Equatable {
        case message([UInt8])
        /// Not all of the next message has arrived.
        case incomplete
        /// The next message is flagged compressed (the call named no compression) or too large.
        case invalid(String)
    }

    /// Takes the next whole message off the front of `buffer`.
    static func nextMessage(_ buffer: inout ByteBuffer, maxBytes: Int) -> Frame {
        let start = buffer.readerIndex
        guard let flag = buffer.getInteger(at: start, as: UInt8.self),
            let length = buffer.getInteger(at: start + 1, as: UInt32.self)
        else { return .incomplete }
        guard flag == 0 else { return .invalid("a message is flagged compressed but the call names no compression") }
        guard Int(length) <= maxBytes else {
            return .invalid("a message of \(length) bytes is over the limit of \(maxBytes)")
        }
        guard buffer.readableBytes >= prefixBytes + Int(length) else { return .incomplete }
        buffer.moveReaderIndex(forwardBy: prefixBytes)
        return .message(buffer.readBytes(length: Int(length))!)
    }

    /// `[prefix][message]`, as a DATA frame carries it.
    private static func framed(_ message: [UInt8], allocator: ByteBufferAllocator) -> ByteBuffer {
        var data = allocator.buffer(capacity: prefixBytes + message.count)
        data.writeInteger(UInt8(0))
        data.writeInteger(UInt32(message.count))
        data.writeBytes(message)
        return data
    }

    // MARK: - Trace exports

    /// Decodes and queues the spans, then answers once they are committed; hands the call to
    /// grpc-swift instead when anything is not plain.
    private func serveExport(_ headers: HTTP2Frame.FramePayload.Headers, body: ByteBuffer, context: ChannelHandlerContext) {
        let sink = settings.sink
        let submission: IngestSink.Submission
        do {
            var unread = body
            guard case .message(let message) = Self.nextMessage(&unread, maxBytes: settings.maxMessageBytes),
                unread.readableBytes == 0
            else { throw Declined() }
            submission = try sink.submit(OTLPTraceDecoder().decode(protobuf: message), channel: Self.traceChannel)
        } catch {
            // grpc-swift answers it, with the same checks, and counts it.
            pass(headers, body, endStream: true, context: context)
            return
        }
        state = .committing
        let logger = settings.logger
        let loop = context.eventLoop
        let bound = NIOLoopBound((handler: self, context: context), eventLoop: loop)
        // Called on the writer's thread: the rest (counting, forwarding, the answer) is the loop's.
        submission.receipt.whenCommitted { outcome in
            loop.execute {
                let answer: Result<[UInt8], RPCError>
                do {
                    let batch = sink.finish(submission, summary: try outcome.get())
                    answer = .success(try OTLPIngest.tracesAnswer(batch).serializedBytes())
                } catch {
                    sink.count(error, channel: Self.traceChannel)
                    answer = .failure(GRPCErrorMapping.rpcError(error, logger: logger))
                }
                let handler = bound.value.handler
                guard case .committing = handler.state else { return }  // the stream went away meanwhile
                handler.state = .done
                handler.respond(answer, context: bound.value.context)
            }
        }
    }

    private struct Declined: Error {}

    // MARK: - ALS streams

    /// An ALS stream being served.
    private struct StreamState {
        var decoder: ALSStream
        let window: StreamWindow
        /// Bytes read and not yet deframed.
        var unread = ByteBuffer()
        /// The client has ended its side.
        var ended = false
        /// A decoded batch that waits for room in the window.
        var held: IngestBatch?
        /// Messages and records queued and not yet committed.
        var waitingMessages = 0
        var waitingRecords = 0
        /// The error that ends the stream, once the messages before it are committed.
        var failure: RPCError?
        /// A read was asked for while the window was full.
        var readPending = false

        init(decoder: ALSStream, _ window: StreamWindow) {
            self.decoder = decoder
            self.window = window
        }

        /// Whether reading may go on: nothing held, and the window not full of messages.
        var hasRoom: Bool { held == nil && waitingMessages < window.maxMessages }
    }

    /// Decodes and queues what the window has room for; answers once everything is in.
    private func pump(context: ChannelHandlerContext) {
        guard var s = stream else { return }
        stream = nil  // not shared while it changes
        defer { stream = s }
        let sink = settings.sink
        while s.failure == nil {
            if s.held == nil {
                guard s.waitingMessages < s.window.maxMessages else { break }
                switch Self.nextMessage(&s.unread, maxBytes: settings.maxMessageBytes) {
                case .message(let message):
                    do {
                        s.held = try s.decoder.decode(message)
                    } catch {
                        fail(&s, error)
                    }
                    continue
                case .incomplete:
                    if s.ended && s.unread.readableBytes > 0 {
                        fail(&s, RPCError(code: .internalError, message: "the stream ended inside a message"))
                    }
                case .invalid(let reason):
                    fail(&s, RPCError(code: .internalError, message: reason))
                }
                break
            }
            guard let batch = s.held else { break }
            if s.waitingMessages > 0, s.waitingRecords + batch.recordCount > s.window.maxRecords { break }
            s.held = nil
            let submission: IngestSink.Submission
            do {
                submission = try sink.submit(consume batch, channel: ALSStream.channel)
            } catch {
                fail(&s, error)
                break
            }
            let records = submission.batch.recordCount
            s.waitingMessages += 1
            s.waitingRecords += records
            let logger = settings.logger
            let loop = context.eventLoop
            let bound = NIOLoopBound((handler: self, context: context), eventLoop: loop)
            submission.receipt.whenCommitted { outcome in
                loop.execute {
                    var failure: (any Error)?
                    do {
                        ALSStream.stored(sink.finish(submission, summary: try outcome.get()), logger: logger)
                    } catch {
                        failure = error
                    }
                    let handler = bound.value.handler
                    guard var s = handler.stream else {
                        // The stream went away meanwhile: nobody to answer.
                        if let failure { sink.count(failure, channel: ALSStream.channel) }
                        return
                    }
                    s.waitingMessages -= 1
                    s.waitingRecords -= records
                    if let failure { handler.fail(&s, failure) }
                    handler.stream = s
                    handler.pump(context: bound.value.context)
                }
            }
        }
        if s.waitingMessages == 0, s.held == nil, s.failure != nil || s.ended && s.unread.readableBytes == 0 {
            state = .done
            let answer: Result<[UInt8], RPCError> = s.failure.map { .failure($0) } ?? .success([])
            s.unread.clear()
            respond(answer, context: context)
            if s.failure != nil, !s.ended { context.close(promise: nil) }
        } else if s.failure == nil, s.hasRoom, s.readPending {
            s.readPending = false
            context.read()
        }
    }

    /// Ends a stream with `error` once the messages before it are committed; counts it.
    private func fail(_ s: inout StreamState, _ error: any Error) {
        guard s.failure == nil else { return }
        settings.sink.count(error, channel: ALSStream.channel)
        s.failure = GRPCErrorMapping.rpcError(error, logger: settings.logger)
        s.held = nil
    }

    /// Holds reads back while an ALS stream's window is full: the stream's flow-control window
    /// then closes and the proxy waits.
    func read(context: ChannelHandlerContext) {
        if case .streaming = state, var s = stream, !s.hasRoom || s.failure != nil {
            s.readPending = true
            stream = s
            return
        }
        context.read()
    }

    // MARK: - Answers

    /// Writes the answer as grpc-swift would: headers, the response message and `grpc-status` 0
    /// in trailers; or, for an error, the status alone.
    private func respond(_ answer: Result<[UInt8], RPCError>, context: ChannelHandlerContext) {
        var headers: HPACKHeaders = [":status": "200", "content-type": "application/grpc"]
        switch answer {
        case .success(let message):
            context.write(wrapOutboundOut(.headers(.init(headers: headers))), promise: nil)
            let data = Self.framed(message, allocator: context.channel.allocator)
            context.write(wrapOutboundOut(.data(.init(data: .byteBuffer(data)))), promise: nil)
            let trailers: HPACKHeaders = ["grpc-status": "0"]
            context.writeAndFlush(wrapOutboundOut(.headers(.init(headers: trailers, endStream: true))), promise: nil)
        case .failure(let error):
            headers.add(name: "grpc-status", value: String(error.code.rawValue))
            headers.add(name: "grpc-message", value: Self.percentEncoded(error.message))
            context.writeAndFlush(wrapOutboundOut(.headers(.init(headers: headers, endStream: true))), promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        // An answer still committing is not written; the records are stored all the same.
        state = .done
        stream = nil
        context.fireChannelInactive()
    }

    /// `grpc-message` as the gRPC protocol carries it: UTF-8, with `%` and every byte outside
    /// printable ASCII written as `%XX`.
    static func percentEncoded(_ text: String) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            if byte >= 0x20, byte <= 0x7E, byte != UInt8(ascii: "%") {
                bytes.append(byte)
            } else {
                bytes += [UInt8(ascii: "%"), hex[Int(byte >> 4)], hex[Int(byte & 0x0F)]]
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
