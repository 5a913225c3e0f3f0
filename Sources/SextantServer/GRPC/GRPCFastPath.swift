import GRPCCore
import Logging
import NIOCore
import NIOHPACK
import NIOHTTP2
import SextantIngest
import SextantModel
import SwiftProtobuf

/// Answers OTLP trace exports straight from their HTTP/2 stream's pipeline, in front of grpc-swift:
/// the request message is gathered, decoded and queued for the writer on the event loop that read
/// it, and answered there once committed, with no task, no message streams and no interceptors.
/// grpc-swift's handling of a call costs more than decoding the 50 spans it carries.
///
/// Only the plain case takes this way: `POST` of `TraceService/Export` as `application/grpc` without
/// compression, with the ingest token when one is set, one uncompressed message within the size
/// limit, decoded, and the writer and memory guard willing. Anything else (another method, a
/// compressed or oversized message, a missing token, a body that is not protobuf, a refusal) goes on
/// to grpc-swift unchanged, frames and all, and is answered there, so both ways give the same answers.
/// Spans rejected one by one are answered here, in `partial_success` as grpc-swift's way answers them.
///
/// The handler sits first in each stream's pipeline (`HTTP2ServerTransport`'s stream callback),
/// before grpc-swift's own stream handler, which never hears of a call taken here.
final class GRPCFastPath: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias InboundOut = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    /// What every stream's handler shares.
    struct Settings: Sendable {
        var sink: IngestSink
        var tokens: AccessTokens
        /// The largest request message taken, as grpc-swift's `maxRequestPayloadSize`.
        var maxMessageBytes: Int
        var logger: Logger
    }

    static let exportPath = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
    static let channel = "otlp_traces"

    private enum State {
        /// No frame read yet.
        case idle
        /// Gathering the message of a call this handler takes.
        case gathering(HTTP2Frame.FramePayload.Headers, ByteBuffer)
        /// The answer waits for the commit.
        case committing
        /// Passing the call's frames on to grpc-swift.
        case passing
        /// Answered.
        case done
    }

    private let settings: Settings
    private var state = State.idle

    init(settings: Settings) {
        self.settings = settings
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch (state, frame) {
        case (.idle, .headers(let headers)):
            if takes(headers) {
                state = .gathering(headers, context.channel.allocator.buffer(capacity: 0))
            } else {
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
                serve(headers, body: body, context: context)
            } else {
                state = .gathering(headers, body)
            }
        case (.gathering(let headers, let body), _):
            // Trailers or anything unusual from the client: grpc-swift's to judge.
            pass(headers, body, endStream: false, context: context)
            context.fireChannelRead(data)
        case (.committing, _), (.done, _):
            break
        default:
            state = .passing
            context.fireChannelRead(data)
        }
    }

    /// Whether the call's headers are the plain case this handler takes.
    private func takes(_ frame: HTTP2Frame.FramePayload.Headers) -> Bool {
        let headers = frame.headers
        guard !frame.endStream, headers.first(name: ":path") == Self.exportPath,
            headers.first(name: ":method") == "POST",
            let type = headers.first(name: "content-type"),
            type == "application/grpc" || type == "application/grpc+proto"
        else { return false }
        if let encoding = headers.first(name: "grpc-encoding"), encoding != "identity" { return false }
        return settings.tokens.allows(.ingest, authorization: headers.first(name: "authorization"))
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

    /// A gRPC message's prefix: a compression flag and a four-byte big-endian length.
    static let prefixBytes = 5

    /// The one uncompressed message of a call's body, if that is what it is.
    static func message(in body: ByteBuffer) -> [UInt8]? {
        let start = body.readerIndex
        guard body.readableBytes >= prefixBytes, body.getInteger(at: start, as: UInt8.self) == 0,
            let length = body.getInteger(at: start + 1, as: UInt32.self),
            Int(length) == body.readableBytes - prefixBytes
        else { return nil }
        return body.getBytes(at: start + prefixBytes, length: Int(length))
    }

    /// Decodes and queues the spans, then answers once they are committed; hands the call to
    /// grpc-swift instead when anything is not plain.
    private func serve(_ headers: HTTP2Frame.FramePayload.Headers, body: ByteBuffer, context: ChannelHandlerContext) {
        let sink = settings.sink
        let submission: IngestSink.Submission
        do {
            guard let message = Self.message(in: body) else { throw Declined() }
            submission = try sink.submit(OTLPTraceDecoder().decode(protobuf: message), channel: Self.channel)
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
                    sink.count(error, channel: Self.channel)
                    answer = .failure(GRPCErrorMapping.rpcError(error, logger: logger))
                }
                bound.value.handler.respond(answer, context: bound.value.context)
            }
        }
    }

    private struct Declined: Error {}

    /// Writes the answer as grpc-swift would: headers, the response message and `grpc-status` 0
    /// in trailers; or, for a failed commit, the status alone.
    private func respond(_ answer: Result<[UInt8], RPCError>, context: ChannelHandlerContext) {
        guard case .committing = state else { return }  // the stream went away meanwhile
        state = .done
        var headers: HPACKHeaders = [":status": "200", "content-type": "application/grpc"]
        switch answer {
        case .success(let message):
            context.write(wrapOutboundOut(.headers(.init(headers: headers))), promise: nil)
            var data = context.channel.allocator.buffer(capacity: Self.prefixBytes + message.count)
            data.writeInteger(UInt8(0))
            data.writeInteger(UInt32(message.count))
            data.writeBytes(message)
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
        // An answer still committing is not written; the spans are stored all the same.
        state = .done
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
