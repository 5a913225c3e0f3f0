import CompressNIO
import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTesting
import NIOCore
import SextantFixtures
import SextantServer
import SextantWire
import SwiftProtobuf
import Synchronization
import Testing

/// The ingest routes the pipeline answers itself (`IngestFastPath`) answer as the router does:
/// every request below is sent to a live server (fast path in front) and to the router alone, each
/// on a database of its own, and gets the same status and body, and leaves the same data behind.
@Suite struct IngestFastPathTests {
    private struct Exchange: Sendable {
        var uri: String
        var headers: HTTPFields
        var body: [UInt8]
    }

    private struct Answer: Equatable, Sendable, CustomStringConvertible {
        var status: Int
        /// The body, with how far ahead of the clock a record was (seconds apart in the two runs) left out.
        var body: String

        init(status: Int, body: String) {
            self.status = status
            self.body = body.replacing(/\d+ s ahead/, with: "… s ahead")
        }
        var description: String { "\(status) \(body)" }
    }

    private static func zipkinExchanges() throws -> [Exchange] {
        let json: HTTPFields = [.contentType: "application/json"]
        let files = try Fixtures.files(in: "envoy/zipkin", suffix: ".json")
        var exchanges = try files.prefix(6).map { Exchange(uri: "/api/v2/spans", headers: json, body: try Fixtures.bytes($0)) }
        let batch = try Fixtures.bytes(files[6])
        var plain = ByteBuffer(bytes: batch)
        var zipped = try plain.compress(with: .gzip())
        exchanges += [
            // gzip, no content type (JSON is assumed), a query string on the path
            Exchange(uri: "/api/v2/spans?x=1", headers: [.contentEncoding: "gzip"], body: zipped.readBytes(length: zipped.readableBytes)!),
            // not JSON; not a content type Zipkin takes; one bad span among good ones; an empty array
            Exchange(uri: "/api/v2/spans", headers: json, body: Array("[{\"traceId\":".utf8)),
            Exchange(uri: "/api/v2/spans", headers: [.contentType: "text/csv"], body: batch),
            Exchange(
                uri: "/api/v2/spans", headers: json,
                body: Array("[{\"traceId\":\"zz\",\"id\":\"1\"},".utf8) + batch.dropFirst()),
            Exchange(uri: "/api/v2/spans", headers: json, body: Array("[]".utf8)),
            Exchange(uri: "/api/v2/spans", headers: [.contentType: "application/json", .contentEncoding: "br"], body: batch),
            // decoded whole, then a span refused by the limits: a day ahead of the clock
            Exchange(uri: "/api/v2/spans", headers: json, body: Array(Self.aheadSpan.utf8) + batch.dropFirst()),
        ]
        return exchanges
    }

    /// A Zipkin span a day ahead of now, and a comma.
    private static var aheadSpan: String {
        let micros = Int64(Date().timeIntervalSince1970 * 1_000_000) + 86_400_000_000
        return "[{\"traceId\":\"5ec7a17000000000000000000000ahea\",\"id\":\"5ec7a17000000001\",\"name\":\"ahead\","
            + "\"timestamp\":\(micros),\"duration\":10,\"localEndpoint\":{\"serviceName\":\"ahead\"}},"
    }

    private static func accessLogExchanges() throws -> [Exchange] {
        let workload = Fixtures.workloads[0]
        let lines = try Fixtures.bytes("envoy/access-log/\(workload).jsonl")
        return [
            Exchange(uri: try accessLogURI(workload), headers: [:], body: lines),
            Exchange(uri: try accessLogURI(workload) + "&app=renamed&version=v9", headers: [:], body: lines),
            // the proxy of the request before is not kept for a request naming another
            Exchange(uri: try accessLogURI(workload), headers: [:], body: lines),
            Exchange(uri: "/api/v1/accesslogs", headers: [:], body: lines),
            Exchange(uri: "/api/v1/accesslogs?node=not-a-node", headers: [:], body: lines),
            Exchange(uri: try accessLogURI(workload), headers: [:], body: Array("{\"not\":\"a log line\"}\n".utf8) + lines),
        ]
    }

    /// Sends every exchange in turn, then reads `reads` back.
    private static func answers(
        _ client: some TestClientProtocol, _ exchanges: [Exchange], reads: [String]
    ) async throws -> [Answer] {
        var answers: [Answer] = []
        for e in exchanges {
            answers.append(
                try await client.execute(uri: e.uri, method: .post, headers: e.headers, body: ByteBuffer(bytes: e.body)) {
                    Answer(status: Int($0.status.code), body: String(buffer: $0.body))
                })
        }
        for uri in reads {
            answers.append(try await client.execute(uri: uri, method: .get) { Answer(status: Int($0.status.code), body: String(buffer: $0.body)) })
        }
        return answers
    }

    private static func compare(
        _ exchanges: [Exchange], reads: [String], router: (Collector) -> Router<BasicRequestContext>,
        server: (Collector) -> HTTPServerBuilder, prepare: (Collector) async throws -> Void = { _ in },
        stored: (Collector) async throws -> String = { _ in "" }
    ) async throws {
        let routerAnswers = Mutex<[Answer]>([])
        try await withCollector { collector in
            try await prepare(collector)
            try await Application(router: router(collector)).test(.router) { client in
                let answers = try await answers(client, exchanges, reads: reads)
                routerAnswers.withLock { $0 = answers }
            }
            let state = try await stored(collector)
            routerAnswers.withLock { $0.append(Answer(status: 0, body: state)) }
        }
        let pipelineAnswers = Mutex<[Answer]>([])
        try await withCollector { collector in
            try await prepare(collector)
            let app = Application(
                router: router(collector), server: server(collector),
                configuration: .init(address: .hostname("127.0.0.1", port: 0)))
            try await app.test(.live) { client in
                let answers = try await answers(client, exchanges, reads: reads)
                pipelineAnswers.withLock { $0 = answers }
            }
            let state = try await stored(collector)
            pipelineAnswers.withLock { $0.append(Answer(status: 0, body: state)) }
        }
        let viaRouter = routerAnswers.withLock { $0 }
        let viaPipeline = pipelineAnswers.withLock { $0 }
        #expect(viaPipeline.count == viaRouter.count)
        for (i, (a, b)) in zip(viaPipeline, viaRouter).enumerated() {
            #expect(a == b, "request \(i)")
        }
    }

    @Test func zipkinSpansAreAnsweredAndStoredAsByTheRouter() async throws {
        try await Self.compare(
            try Self.zipkinExchanges(),
            reads: [
                "/api/v2/services", "/api/v2/traces?limit=1000&lookback=100000000000&endTs=1795706853000",
                "/api/v2/trace/8ea82b9b855cf7e015f7aa6903dd9b74",
            ],
            router: { $0.zipkinRouter }, server: { $0.zipkinServer })
    }

    @Test func accessLogLinesAreAnsweredAndStoredAsByTheRouter() async throws {
        try await Self.compare(
            try Self.accessLogExchanges(), reads: ["/api/v1/graph?graphType=workload&window=100000d&end=1795800000"],
            router: { $0.apiRouter }, server: { $0.apiServer })
    }

    @Test func otlpSpansAreAnsweredAndStoredAsByTheRouter() async throws {
        let protobuf: HTTPFields = [.contentType: "application/x-protobuf"]
        let files = try Fixtures.files(in: "envoy/otlp/traces", suffix: ".pb")
        var exchanges = try files.prefix(4).map { Exchange(uri: "/v1/traces", headers: protobuf, body: try Fixtures.bytes($0)) }
        let one = try Fixtures.bytes(files[4])
        exchanges += [
            Exchange(uri: "/v1/traces", headers: [.contentType: "application/protobuf"], body: one),
            // not protobuf; JSON (the router's); no content type; a truncated message
            Exchange(uri: "/v1/traces", headers: protobuf, body: Array("not protobuf".utf8)),
            Exchange(uri: "/v1/traces", headers: [.contentType: "application/json"], body: Array("{\"resourceSpans\":[]}".utf8)),
            Exchange(uri: "/v1/traces", headers: [:], body: one),
            Exchange(uri: "/v1/traces", headers: protobuf, body: Array(one.prefix(one.count / 2))),
            // decoded whole, then a span refused by the limits (a day ahead): a partial success
            Exchange(uri: "/v1/traces", headers: protobuf, body: try Self.withASpanAhead(one)),
        ]
        try await Self.compare(
            exchanges, reads: [], router: { $0.otlpRouter }, server: { $0.otlpServer },
            stored: { collector in
                // What they stored, as the Zipkin API reads it back.
                try await Application(router: collector.zipkinRouter).test(.router) { client in
                    try await client.execute(uri: "/api/v2/traces?limit=1000&lookback=100000000000&endTs=1795800000000", method: .get) {
                        let body = String(buffer: $0.body)
                        #expect($0.status == .ok && body.count > 100)
                        return body
                    }
                }
            })
    }

    /// An OTLP export request whose first span starts a day ahead of now.
    static func withASpanAhead(_ protobuf: [UInt8]) throws -> [UInt8] {
        var request = try Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest(serializedBytes: protobuf)
        let ahead = UInt64(Date().timeIntervalSince1970 + 86_400) * 1_000_000_000
        request.resourceSpans[0].scopeSpans[0].spans[0].startTimeUnixNano = ahead
        request.resourceSpans[0].scopeSpans[0].spans[0].endTimeUnixNano = ahead + 1_000_000
        return try request.serializedBytes()
    }

    /// A commit that fails (the database cannot be written) is answered with the same 503.
    @Test func aFailedCommitIsAnsweredAsByTheRouter() async throws {
        let batch = try Fixtures.bytes(try Fixtures.files(in: "envoy/zipkin", suffix: ".json")[0])
        try await Self.compare(
            [Exchange(uri: "/api/v2/spans", headers: [.contentType: "application/json"], body: batch)], reads: [],
            router: { $0.zipkinRouter }, server: { $0.zipkinServer },
            prepare: { collector in
                try await collector.database.pool.writeWithoutTransaction { try $0.execute(sql: "PRAGMA query_only = 1") }
            })
    }

    /// A missing ingest token is refused by the router's middleware, not taken by the pipeline.
    @Test func anIngestTokenIsStillRequired() async throws {
        let batch = try Fixtures.bytes(try Fixtures.files(in: "envoy/zipkin", suffix: ".json")[0])
        try await withCollector(configure: { $0.tokens = AccessTokens(ingest: "in-secret") }) { collector in
            let app = Application(
                router: collector.zipkinRouter, server: collector.zipkinServer,
                configuration: .init(address: .hostname("127.0.0.1", port: 0)))
            try await app.test(.live) { client in
                try await client.execute(uri: "/api/v2/spans", method: .post, body: ByteBuffer(bytes: batch)) {
                    #expect($0.status == .unauthorized)
                }
                try await client.execute(
                    uri: "/api/v2/spans", method: .post, headers: [.authorization: "Bearer in-secret"],
                    body: ByteBuffer(bytes: batch)
                ) { #expect($0.status == .accepted) }
            }
        }
    }

    /// A connection that waits for its answer before it sends again is not kept waiting for the
    /// commit interval when it is the only sender; one that has gone away no longer counts.
    @Test func theOnlySenderIsCommittedWithoutWaitingForTheInterval() async throws {
        let batch = try Fixtures.bytes(try Fixtures.files(in: "envoy/zipkin", suffix: ".json")[0])
        let post =
            Array("POST /api/v2/spans HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: \(batch.count)\r\n\r\n".utf8)
            + batch
        try await withCollector(configure: { $0.writer.commitInterval = .seconds(4) }) { collector in
            let app = Application(
                router: collector.zipkinRouter, server: collector.zipkinServer,
                configuration: .init(address: .hostname("127.0.0.1", port: 0)))
            try await app.test(.live) { client in
                // A sender that sent once and closed its connection.
                #expect(try await RawHTTP.exchange(port: client.port!, send: post, answers: 1) == [202])
                // The first request on the second connection finds the writer busy lately and
                // waits; the second comes right after a commit and would wait 4 s for company. Under the load
                // of the whole suite on two cores a commit has taken most of a second.
                var waits: [Duration] = []
                for _ in 0..<3 {
                    let start = ContinuousClock.now
                    try await client.execute(uri: "/api/v2/spans", method: .post, body: ByteBuffer(bytes: batch)) {
                        #expect($0.status == .accepted)
                    }
                    waits.append(start.duration(to: .now))
                }
                #expect(waits.dropFirst().allSatisfy { $0 < .seconds(2) }, "\(waits)")
            }
        }
    }

    /// Requests pipelined on one connection are answered in order, whichever way each takes.
    @Test func pipelinedRequestsAreAnsweredInOrder() async throws {
        let batch = try Fixtures.bytes(try Fixtures.files(in: "envoy/zipkin", suffix: ".json")[0])
        func post(_ body: [UInt8]) -> [UInt8] {
            Array("POST /api/v2/spans HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: \(body.count)\r\n\r\n".utf8)
                + body
        }
        let health = Array("GET /health HTTP/1.1\r\nhost: x\r\n\r\n".utf8)
        let bad = Array("[{".utf8)
        // health (router), spans (pipeline), bad spans (router), spans, health: all in one write.
        let wire = health + post(batch) + post(bad) + post(batch) + health
        try await withCollector { collector in
            let app = Application(
                router: collector.zipkinRouter, server: collector.zipkinServer,
                configuration: .init(address: .hostname("127.0.0.1", port: 0)))
            try await app.test(.live) { client in
                let statuses = try await RawHTTP.exchange(port: client.port!, send: wire, answers: 5)
                #expect(statuses == [200, 202, 400, 202, 200])
            }
        }
    }
}

/// One blocking loopback connection that writes bytes as they are and reads the statuses of
/// `answers` HTTP/1.1 answers (each with a `content-length`).
private enum RawHTTP {
    /// Runs the exchange on a thread of its own: blocked in `read`, it must not hold one of the
    /// few threads the server under test runs its tasks on.
    static func exchange(port: Int, send: [UInt8], answers: Int) async throws -> [Int] {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread {
                continuation.resume(with: Result { try blockingExchange(port: port, send: send, answers: answers) })
            }
        }
    }

    private static func blockingExchange(port: Int, send: [UInt8], answers: Int) throws -> [Int] {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        precondition(fd >= 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        #expect(connected == 0)
        var offset = 0
        while offset < send.count {
            let n = send[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard n > 0 else { break }
            offset += n
        }
        var received: [UInt8] = []
        var statuses: [Int] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while statuses.count < answers {
            // Parse every complete answer in what arrived so far.
            while let end = find(Array("\r\n\r\n".utf8), in: received) {
                let head = String(decoding: received[..<end], as: UTF8.self)
                let lines = head.split(separator: "\r\n")
                let status = Int(lines[0].split(separator: " ")[1])!
                let length =
                    lines.dropFirst().compactMap { line -> Int? in
                        let parts = line.split(separator: ":", maxSplits: 1)
                        guard parts.count == 2, parts[0].lowercased() == "content-length" else { return nil }
                        return Int(parts[1].trimmingCharacters(in: .whitespaces))
                    }.first ?? 0
                guard received.count >= end + 4 + length else { break }
                statuses.append(status)
                received.removeFirst(end + 4 + length)
            }
            if statuses.count == answers { break }
            let n = read(fd, &buffer, buffer.count)
            guard n > 0 else { break }
            received += buffer[..<n]
        }
        return statuses
    }

    private static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        for i in 0...(haystack.count - needle.count) where haystack[i..<(i + needle.count)].elementsEqual(needle) { return i }
        return nil
    }
}
