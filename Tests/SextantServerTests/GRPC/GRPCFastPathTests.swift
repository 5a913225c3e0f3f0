import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Hummingbird
import HummingbirdTesting
import NIOCore
import NIOEmbedded
import NIOHPACK
import NIOHTTP2
import SextantFixtures
import SextantWire
import SwiftProtobuf
import Synchronization
import Testing

@testable import SextantServer

/// OTLP trace exports and ALS streams answered from the HTTP/2 stream (`GRPCFastPath`) answer as
/// grpc-swift does, and every call the fast path does not take reaches grpc-swift unchanged.
@Suite struct GRPCFastPathTests {
    private struct Call: Sendable {
        var message: [UInt8]
        /// An ALS stream's messages, for a stream; nil for an export.
        var stream: [[UInt8]]? = nil
        var token: String? = "in-secret"
        var gzip = false

        init(message: [UInt8], token: String? = "in-secret", gzip: Bool = false) {
            self.message = message
            self.token = token
            self.gzip = gzip
        }

        init(stream: [[UInt8]], token: String? = "in-secret", gzip: Bool = false) {
            self.message = []
            self.stream = stream
            self.token = token
            self.gzip = gzip
        }
    }

    private static let token = "in-secret"

    private static func calls() throws -> [Call] {
        let files = try Fixtures.files(in: "envoy/otlp/traces", suffix: ".pb")
        var calls = try files.prefix(3).map { Call(message: try Fixtures.bytes($0)) }
        let one = try Fixtures.bytes(files[3])
        var badSpan = try Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest(serializedBytes: one)
        badSpan.resourceSpans[0].scopeSpans[0].spans[0].spanID = Data()
        calls += [
            // compressed (grpc-swift's); one span without an id (a partial success); not protobuf; truncated
            Call(message: try Fixtures.bytes(files[4]), gzip: true),
            Call(message: try badSpan.serializedBytes()),
            Call(message: Array("not protobuf".utf8)),
            Call(message: Array(one.prefix(one.count / 2))),
            // decoded whole, then a span refused by the limits (a day ahead): a partial success
            Call(message: try IngestFastPathTests.withASpanAhead(one)),
            // without the token, and with another
            Call(message: one, token: nil),
            Call(message: one, token: "not-it"),
        ]
        return calls
    }

    /// Serves the collector's gRPC services on a loopback port, with or without the fast path,
    /// and makes each call in turn: the answer's bytes, or the error's code and message.
    private static func answers(_ collector: Collector, fastPath: Bool, calls: [Call]) async throws -> [String] {
        try await withGRPCListener({ onListening in
            try GRPCListener(
                host: "127.0.0.1", port: 0, maxMessageBytes: 4 << 20, tls: nil, services: collector.grpcServices,
                interceptors: collector.grpcInterceptors, fastPath: fastPath ? collector.grpcFastPath : nil,
                onListening: onListening)
        }) { bound in
            let port = try #require(bound?.split(separator: ":").last.flatMap { Int($0) })
            var config = HTTP2ClientTransport.Posix.Config.defaults
            config.compression.enabledAlgorithms = .all
            let client = GRPCClient(
                transport: try .http2NIOPosix(
                    target: .ipv4(address: "127.0.0.1", port: port), transportSecurity: .plaintext, config: config))
            return try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await client.runConnections() }
                var answers: [String] = []
                for call in calls {
                    var options = CallOptions.defaults
                    if call.gzip { options.compression = .gzip }
                    let metadata: Metadata = call.token.map { ["authorization": "Bearer \($0)"] } ?? [:]
                    do {
                        if let messages = call.stream {
                            let response = try await client.clientStreaming(
                                request: StreamingClientRequest(metadata: metadata) { writer in
                                    for message in messages { try await writer.write(message) }
                                },
                                descriptor: AccessLogService.Method.descriptor, serializer: RawMessageSerializer(),
                                deserializer: RawMessageDeserializer(), options: options
                            ) { try $0.message }
                            answers.append("ok \(response)")
                            continue
                        }
                        let response = try await client.unary(
                            request: ClientRequest(message: call.message, metadata: metadata),
                            descriptor: OTLPTraceService.Method.descriptor, serializer: RawMessageSerializer(),
                            deserializer: RawMessageDeserializer(), options: options
                        ) { try $0.message }
                        let answer = try Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceResponse(
                            serializedBytes: response)
                        answers.append(
                            answer.hasPartialSuccess
                                ? "partial \(answer.partialSuccess.rejectedSpans) \(answer.partialSuccess.errorMessage)"
                                : "ok \(response)")
                    } catch let error as RPCError {
                        answers.append("\(error.code) \(error.message)")
                    }
                }
                client.beginGracefulShutdown()
                group.cancelAll()
                // How far ahead of the clock a span was is seconds apart in the two runs.
                return answers.map { $0.replacing(/\d+ s ahead/, with: "… s ahead") }
            }
        }
    }

    /// What the collector stored, as the Zipkin API reads it back.
    private static func traces(_ collector: Collector) async throws -> String {
        try await Application(router: collector.zipkinRouter).test(.router) { client in
            try await client.execute(
                uri: "/api/v2/traces?limit=1000&lookback=100000000000&endTs=1795800000000", method: .get
            ) { String(buffer: $0.body) }
        }
    }

    /// The graph the collector holds, as the HTTP API reads it back.
    private static func graph(_ collector: Collector) async throws -> String {
        try await Application(router: collector.apiRouter).test(.router) { client in
            try await client.execute(uri: "/api/v1/graph?graphType=workload&window=100000d&end=1795800000", method: .get) {
                String(buffer: $0.body)
            }
        }
    }

    /// Makes the calls both ways and compares; returns the fast path's answers.
    @discardableResult
    private static func compare(
        _ calls: [Call], prepare: @escaping (Collector) async throws -> Void = { _ in },
        stored: @escaping (Collector) async throws -> String = traces
    ) async throws -> [String] {
        var results: [[String]] = []
        for fastPath in [false, true] {
            let result = Mutex<[String]>([])
            try await withCollector(configure: { $0.tokens = AccessTokens(ingest: token) }) { collector in
                try await prepare(collector)
                let answers = try await answers(collector, fastPath: fastPath, calls: calls)
                let state = try await stored(collector)
                result.withLock { $0 = answers + [state] }
            }
            results.append(result.withLock { $0 })
        }
        let (viaGRPCSwift, viaFastPath) = (results[0], results[1])
        #expect(viaFastPath.count == calls.count + 1)
        for (i, (a, b)) in zip(viaFastPath, viaGRPCSwift).enumerated() {
            #expect(a == b, "call \(i)")
        }
        return viaFastPath
    }

    @Test func exportsAreAnsweredAndStoredAsByGRPCSwift() async throws {
        let answers = try await Self.compare(try Self.calls())
        let kinds = answers.dropLast().map { $0.prefix { $0 != " " } }
        #expect(
            kinds == [
                "ok", "ok", "ok", "ok", "partial", "invalidArgument", "invalidArgument", "partial", "unauthenticated",
                "unauthenticated",
            ])
    }

    @Test func accessLogStreamsAreAnsweredAndStoredAsByGRPCSwift() async throws {
        func messages(_ workload: String) throws -> [[UInt8]] {
            try Fixtures.files(in: "envoy/als/\(workload)", suffix: ".pb").map { try Fixtures.bytes($0) }
        }
        let productpage = try messages("productpage-v1")
        let ratings = try messages("ratings-v1")
        var unnamed = try Envoy_Service_Accesslog_V3_StreamAccessLogsMessage(serializedBytes: ratings[0])
        unnamed.clearIdentifier()
        let calls = [
            Call(stream: productpage),
            Call(stream: ratings),
            // compressed (grpc-swift's); a first message without the node; a message that is not protobuf
            // after a good one; without the token
            Call(stream: ratings, gzip: true),
            Call(stream: [try unnamed.serializedBytes()] + ratings.dropFirst()),
            Call(stream: [productpage[0], Array("not protobuf".utf8)]),
            Call(stream: productpage, token: nil),
        ]
        let answers = try await Self.compare(calls, stored: Self.graph)
        let kinds = answers.dropLast().map { $0.prefix { $0 != " " } }
        #expect(kinds == ["ok", "ok", "ok", "invalidArgument", "invalidArgument", "unauthenticated"])
        #expect(answers.last?.contains("productpage-v1") == true)
    }

    /// A commit that fails (the database cannot be written) is answered with the same status.
    @Test func aFailedCommitIsAnsweredAsByGRPCSwift() async throws {
        let one = try Fixtures.bytes(try Fixtures.files(in: "envoy/otlp/traces", suffix: ".pb")[0])
        let als = try Fixtures.files(in: "envoy/als/ratings-v1", suffix: ".pb").map { try Fixtures.bytes($0) }
        try await Self.compare(
            [Call(message: one), Call(stream: als)],
            prepare: { collector in
                try await collector.database.pool.writeWithoutTransaction { try $0.execute(sql: "PRAGMA query_only = 1") }
            })
    }

    // MARK: - Which calls the fast path takes

    private static func headers(
        path: String = GRPCFastPath.exportPath, token: String = token, encoding: String? = nil
    ) -> HTTP2Frame.FramePayload {
        var headers: HPACKHeaders = [
            ":method": "POST", ":path": path, ":scheme": "http", ":authority": "localhost",
            "content-type": "application/grpc", "authorization": "Bearer \(token)",
        ]
        if let encoding { headers.add(name: "grpc-encoding", value: encoding) }
        return .headers(.init(headers: headers))
    }

    /// A frame as the tests compare it.
    private static func text(_ frame: HTTP2Frame.FramePayload) -> String {
        switch frame {
        case .headers(let h): "headers \(h.headers) end \(h.endStream)"
        case .data(let d):
            if case .byteBuffer(let bytes) = d.data { "data \(Array(buffer: bytes)) end \(d.endStream)" } else { "file" }
        default: "\(frame)"
        }
    }

    private static func data(_ message: [UInt8], endStream: Bool = true) -> HTTP2Frame.FramePayload {
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt8(0))
        buffer.writeInteger(UInt32(message.count))
        buffer.writeBytes(message)
        return .data(.init(data: .byteBuffer(buffer), endStream: endStream))
    }

    /// A stream channel with the collector's fast path alone in its pipeline.
    private static func channel(_ collector: Collector) async throws -> NIOAsyncTestingChannel {
        let channel = NIOAsyncTestingChannel()
        let settings = collector.grpcFastPath
        try await channel.testingEventLoop.executeInContext {
            try channel.pipeline.syncOperations.addHandler(GRPCFastPath(settings: settings))
        }
        return channel
    }

    /// Sends a call's frames through a fast path alone; returns what it passed on.
    private static func passed(_ collector: Collector, _ frames: [HTTP2Frame.FramePayload]) async throws
        -> [String]
    {
        let channel = try await Self.channel(collector)
        for frame in frames { try await channel.writeInbound(frame) }
        var passed: [String] = []
        while let frame = try await channel.readInbound(as: HTTP2Frame.FramePayload.self) { passed.append(text(frame)) }
        _ = try? await channel.finish()
        return passed
    }

    @Test func aPlainExportIsAnsweredAndNothingPassesOn() async throws {
        let one = try Fixtures.bytes(try Fixtures.files(in: "envoy/otlp/traces", suffix: ".pb")[0])
        try await withCollector(configure: { $0.tokens = AccessTokens(ingest: Self.token) }) { collector in
            let channel = try await Self.channel(collector)
            // The message in two frames, as a window may split it.
            var message = Self.data(one)
            guard case .data(var whole) = message, case .byteBuffer(var buffer) = whole.data else { return }
            let head = buffer.readSlice(length: 100)!
            whole.data = .byteBuffer(buffer)
            message = .data(whole)
            try await channel.writeInbound(Self.headers())
            try await channel.writeInbound(HTTP2Frame.FramePayload.data(.init(data: .byteBuffer(head))))
            try await channel.writeInbound(message)
            #expect(try await channel.readInbound(as: HTTP2Frame.FramePayload.self) == nil)
            let answer = try await channel.waitForOutboundWrite(as: HTTP2Frame.FramePayload.self)
            guard case .headers(let headers) = answer else { Issue.record("\(answer)"); return }
            #expect(headers.headers.first(name: ":status") == "200" && !headers.endStream)
            let body = try await channel.waitForOutboundWrite(as: HTTP2Frame.FramePayload.self)
            guard case .data(let data) = body, case .byteBuffer(let bytes) = data.data else {
                Issue.record("\(body)")
                return
            }
            // An export response without a partial success: an empty message.
            #expect(Array(buffer: bytes) == [0, 0, 0, 0, 0])
            let end = try await channel.waitForOutboundWrite(as: HTTP2Frame.FramePayload.self)
            guard case .headers(let trailers) = end else { Issue.record("\(end)"); return }
            #expect(trailers.headers.first(name: "grpc-status") == "0" && trailers.endStream)
            _ = try? await channel.finish()
        }
    }

    @Test func whatIsNotPlainPassesOnUnchanged() async throws {
        let one = try Fixtures.bytes(try Fixtures.files(in: "envoy/otlp/traces", suffix: ".pb")[0])
        let configure: (inout CollectorConfiguration) -> Void = {
            $0.tokens = AccessTokens(ingest: Self.token)
            $0.server.maxBodyBytes = 1 << 20
        }
        try await withCollector(configure: configure) { collector in
            let notPlain: [(String, HTTP2Frame.FramePayload)] = [
                ("compressed", Self.headers(encoding: "gzip")),
                ("another method", Self.headers(path: "/opentelemetry.proto.collector.logs.v1.LogsService/Export")),
                ("another token", Self.headers(token: "not-it")),
            ]
            for (what, headers) in notPlain {
                let passed = try await Self.passed(collector, [headers, Self.data(one)])
                #expect(passed == [Self.text(headers), Self.text(Self.data(one))], "\(what)")
            }
            // Read whole, then found not to be protobuf: passed on as one message.
            let garbage = Array("not protobuf".utf8)
            #expect(
                try await Self.passed(collector, [Self.headers(), Self.data(garbage)])
                    == [Self.text(Self.headers()), Self.text(Self.data(garbage))])
            // Over the size limit (1 MiB here): passed on once it is seen to be.
            let big = [UInt8](repeating: 1, count: collector.grpcFastPath.maxMessageBytes + 1)
            let passed = try await Self.passed(collector, [Self.headers(), Self.data(big, endStream: false)])
            #expect(passed.count == 2)
        }
    }

    /// A stream whose window holds one message: each waits for the commit of the one before, and
    /// the stream is answered once all are in.
    @Test func anALSStreamIsServedThroughAFullWindow() async throws {
        let ratings = try Fixtures.files(in: "envoy/als/ratings-v1", suffix: ".pb").map { try Fixtures.bytes($0) }
        let configure: (inout CollectorConfiguration) -> Void = {
            $0.tokens = AccessTokens(ingest: Self.token)
            $0.server.streamWindow.maxMessages = 1
        }
        try await withCollector(configure: configure) { collector in
            let channel = try await Self.channel(collector)
            var all = ByteBuffer()
            for message in ratings {
                all.writeInteger(UInt8(0))
                all.writeInteger(UInt32(message.count))
                all.writeBytes(message)
            }
            try await channel.writeInbound(Self.headers(path: GRPCFastPath.accessLogPath))
            try await channel.writeInbound(HTTP2Frame.FramePayload.data(.init(data: .byteBuffer(all), endStream: true)))
            #expect(try await channel.readInbound(as: HTTP2Frame.FramePayload.self) == nil)
            var answer: [String] = []
            for _ in 0..<3 { answer.append(Self.text(try await channel.waitForOutboundWrite(as: HTTP2Frame.FramePayload.self))) }
            #expect(answer[1] == "data [0, 0, 0, 0, 0] end false")
            #expect(answer[2].contains("grpc-status") && answer[2].contains("0") && answer[2].hasSuffix("end true"))
            _ = try? await channel.finish()
            let graph = try await Self.graph(collector)
            #expect(graph.contains("workload:default:ratings-v1"))
        }
    }

    @Test func framesAreTakenOffTheFrontWhole() {
        var buffer = ByteBuffer(bytes: [0, 0, 0, 0, 2, 7, 8, 0, 0, 0, 0, 3, 9])
        #expect(GRPCFastPath.nextMessage(&buffer, maxBytes: 10) == .message([7, 8]))
        #expect(GRPCFastPath.nextMessage(&buffer, maxBytes: 10) == .incomplete)
        #expect(buffer.readableBytes == 6)
        buffer.writeBytes([10, 11])
        #expect(GRPCFastPath.nextMessage(&buffer, maxBytes: 10) == .message([9, 10, 11]))
        var compressed = ByteBuffer(bytes: [1, 0, 0, 0, 1, 5])
        #expect(GRPCFastPath.nextMessage(&compressed, maxBytes: 10) != .incomplete)
        var large = ByteBuffer(bytes: [0, 0, 0, 0, 11])
        #expect(GRPCFastPath.nextMessage(&large, maxBytes: 10) != .incomplete)
    }

    @Test func grpcMessagesArePercentEncoded() {
        #expect(GRPCFastPath.percentEncoded("plain text: ok") == "plain text: ok")
        #expect(GRPCFastPath.percentEncoded("100% é\n") == "100%25 %C3%A9%0A")
    }
}
