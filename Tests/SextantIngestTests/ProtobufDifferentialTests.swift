import Foundation
import SextantFixtures
@testable import SextantIngest
import SextantModel
import SextantWire
import SwiftProtobuf
import Testing

private typealias TraceRequest = Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest
private typealias OTLPSpan = Opentelemetry_Proto_Trace_V1_Span
private typealias ALSMessage = Envoy_Service_Accesslog_V3_StreamAccessLogsMessage
private typealias HTTPEntry = Envoy_Data_Accesslog_V3_HTTPAccessLogEntry
private typealias TCPEntry = Envoy_Data_Accesslog_V3_TCPAccessLogEntry

/// `Tests/Fuzz/<kind>/<target>/*`, read whole.
private func fuzzInputs(_ target: String) -> [[UInt8]] {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fuzz")
    return ["corpus", "regressions"].flatMap { kind -> [[UInt8]] in
        let folder = root.appendingPathComponent(kind).appendingPathComponent(target)
        let files = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        return files.filter { !$0.hasPrefix(".") }.sorted().compactMap {
            FileManager.default.contents(atPath: folder.appendingPathComponent($0).path).map { [UInt8]($0) }
        }
    }
}

// MARK: - Wire building

/// A field's tag and, for a length-delimited one, its length.
private func varint(_ value: UInt64) -> [UInt8] {
    var value = value
    var out: [UInt8] = []
    while value >= 0x80 {
        out.append(UInt8(value & 0x7F) | 0x80)
        value >>= 7
    }
    out.append(UInt8(value))
    return out
}

private func field(_ number: Int, _ body: [UInt8]) -> [UInt8] {
    varint(UInt64(number << 3 | 2)) + varint(UInt64(body.count)) + body
}

private func bytes(_ message: some SwiftProtobuf.Message) -> [UInt8] {
    try! message.serializedBytes()
}

/// Byte mutations of a valid body: cut short at many points, and single bytes changed.
private func mutations(of body: [UInt8], seed: UInt64) -> [[UInt8]] {
    var out: [[UInt8]] = []
    let step = max(1, body.count / 40)
    for cut in stride(from: 0, to: body.count, by: step) { out.append(Array(body[..<cut])) }
    var state = seed | 1
    func next() -> UInt64 {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return state
    }
    for _ in 0..<120 where !body.isEmpty {
        var changed = body
        let at = Int(next() % UInt64(body.count))
        switch next() % 4 {
        case 0: changed[at] = UInt8(truncatingIfNeeded: next())
        case 1: changed[at] ^= 0x80
        case 2: changed[at] = changed[at] & 0xF8 | UInt8(next() % 8)
        default: changed.insert(UInt8(truncatingIfNeeded: next()), at: at)
        }
        out.append(changed)
    }
    return out
}

private func expectSame(_ new: IngestBatch, _ old: IngestBatch, _ note: String) {
    #expect(new.spans == old.spans, "\(note)")
    #expect(new.requests == old.requests, "\(note)")
    #expect(new.connections == old.connections, "\(note)")
    #expect(new.rejected == old.rejected, "\(note)")
}

// MARK: - OTLP traces

/// The wire decoder against the SwiftProtobuf-message decoder it replaces.
@Suite struct OTLPTraceDifferentialTests {
    private func decodeOld(_ body: [UInt8]) -> IngestBatch? {
        (try? TraceRequest(serializedBytes: body)).map { LegacyOTLPTraceDecoder().decode($0) }
    }

    private func decodeNew(_ body: [UInt8]) -> IngestBatch? {
        try? OTLPTraceDecoder().decode(protobuf: body)
    }

    /// Both decode it to the same batch.
    private func agree(_ body: [UInt8], _ note: String) throws {
        let old = try #require(decodeOld(body), "\(note): SwiftProtobuf refuses it")
        let new = try #require(decodeNew(body), "\(note): the wire decoder refuses it")
        expectSame(new, old, note)
    }

    private static func keyValue(_ key: String, _ set: (inout Opentelemetry_Proto_Common_V1_AnyValue) -> Void)
        -> Opentelemetry_Proto_Common_V1_KeyValue
    {
        .with {
            $0.key = key
            set(&$0.value)
        }
    }

    private static func span(_ id: UInt8, edit: (inout OTLPSpan) -> Void = { _ in }) -> OTLPSpan {
        var span = OTLPSpan()
        span.traceID = Data((1...16).map { UInt8($0) })
        span.spanID = Data(repeating: id, count: 8)
        span.name = "GET /reviews/0"
        span.kind = .client
        span.startTimeUnixNano = 1_795_706_850_714_252_000
        span.endTimeUnixNano = 1_795_706_850_726_000_000
        edit(&span)
        return span
    }

    private static func request(resource: [Opentelemetry_Proto_Common_V1_KeyValue], _ spans: [OTLPSpan]) -> TraceRequest {
        .with {
            $0.resourceSpans = [
                .with {
                    $0.resource.attributes = resource
                    $0.scopeSpans = [.with { $0.spans = spans }]
                }
            ]
        }
    }

    fileprivate static let resource: [Opentelemetry_Proto_Common_V1_KeyValue] = [
        keyValue("service.name") { $0.stringValue = "checkout" },
        keyValue("service.namespace") { $0.stringValue = "shop" },
        keyValue("k8s.deployment.name") { $0.stringValue = "checkout-v2" },
        keyValue("service.version") { $0.intValue = 2 },
        keyValue("service.name") { $0.stringValue = "ignored: the first value wins" },
    ]

    /// Spans that each break one rule or take one unusual path.
    fileprivate static let spans: [OTLPSpan] = [
        span(1),
        span(2) { $0.traceID = Data(count: 16) },
        span(3) { $0.traceID = Data([1, 2, 3]) },
        span(4) { $0.spanID = Data(count: 8) },
        span(5) { $0.spanID = Data(repeating: 5, count: 16) },
        span(6) { $0.parentSpanID = Data([1, 2, 3]) },
        span(7) { $0.parentSpanID = Data(count: 8) },
        span(8) { $0.startTimeUnixNano = 0 },
        span(9) { $0.endTimeUnixNano = 1 },
        span(10) {
            $0.status.code = .error
            $0.status.message = "upstream reset"
            $0.attributes = [keyValue("otel.status_code") { $0.stringValue = "OK" }]
        },
        span(11) { $0.status.code = .ok },
        span(12) {
            $0.kind = .server
            $0.attributes = [
                keyValue("http.status_code") { $0.intValue = 503 },
                keyValue("http.status_code") { $0.stringValue = "200" },
                keyValue("ratio") { $0.doubleValue = 1.5 },
                keyValue("tiny") { $0.doubleValue = 1e-7 },
                keyValue("inf") { $0.doubleValue = .infinity },
                keyValue("sampled") { $0.boolValue = false },
                keyValue("blob") { $0.bytesValue = Data([0, 255, 7]) },
                keyValue("empty") { _ in },
                keyValue("list") {
                    $0.arrayValue.values = [
                        .with { $0.stringValue = "a" }, .with { $0.intValue = -3 },
                        .with { $0.kvlistValue.values = [keyValue("k") { $0.boolValue = true }] },
                    ]
                },
                keyValue("map") { $0.kvlistValue.values = [keyValue("x") { $0.arrayValue.values = [] }] },
                keyValue("") { $0.stringValue = "no key" },
                keyValue("long.value") { $0.stringValue = String(repeating: "é", count: 300) },
            ]
        },
        span(13) {
            $0.kind = .internal
            $0.events = [.with { $0.timeUnixNano = 1_795_706_850_715_000_999; $0.name = "retry" }, .init()]
        },
        span(14) { $0.kind = .producer; $0.attributes = [keyValue("peer.service") { $0.stringValue = "kafka" }] },
        span(15) { $0.kind = .consumer },
        span(16) { $0.kind = OTLPSpan.SpanKind(rawValue: 99)! },
        span(17) {
            $0.kind = .client
            $0.attributes = [
                keyValue("db.system") { $0.stringValue = "postgresql" },
                keyValue("db.name") { $0.stringValue = "orders" },
                keyValue("http.response.status_code") { $0.intValue = 404 },
                keyValue("rpc.grpc.status_code") { $0.intValue = 5 },
            ]
        },
        span(18) {
            // An Envoy span: node id and cluster name the call.
            $0.attributes = [
                keyValue("node_id") {
                    $0.stringValue = "sidecar~10.0.0.7~reviews-v2-7d8f9c6b4d-x2k9p.default~default.svc.cluster.local"
                },
                keyValue("upstream_cluster") { $0.stringValue = "outbound|9080||ratings.default.svc.cluster.local" },
                keyValue("http.url") { $0.stringValue = "http://ratings:9080/ratings/0" },
                keyValue("http.status_code") { $0.stringValue = "200" },
                keyValue("response_flags") { $0.stringValue = "-" },
                keyValue("guid:x-request-id") { $0.stringValue = "5f1c3e0a-1b2c-4d5e-8f90-123456789abc" },
                keyValue("istio.canonical_service") { $0.stringValue = "reviews" },
                keyValue("upstream_cluster") { $0.stringValue = "inbound|9080||" },
            ]
        },
    ]

    @Test func decodersAgreeOnEveryFixtureAndSeed() throws {
        var bodies = try Fixtures.files(in: "envoy/otlp/traces", suffix: ".pb").map { try Fixtures.bytes($0) }
        bodies += fuzzInputs("otlp-traces")
        #expect(bodies.count > 9)
        for (n, body) in bodies.enumerated() { try agree(body, "body \(n)") }
    }

    @Test func decodersAgreeOnHandMadeSpans() throws {
        try agree(bytes(Self.request(resource: Self.resource, Self.spans)), "hand-made spans")
        try agree(bytes(Self.request(resource: [], Self.spans)), "no resource attributes")
        var request = Self.request(resource: Self.resource, Self.spans)
        request.resourceSpans.append(
            .with {
                $0.scopeSpans = [.with { $0.spans = [Self.span(30)] }, .init(), .with { $0.spans = Self.spans }]
            })
        try agree(bytes(request), "several resources and scopes")
        try agree([], "an empty request")
    }

    @Test func decodersMergeRepeatedFieldsAlike() throws {
        // Two encodings of a message back to back are one merged message.
        let a = bytes(Self.span(1) { $0.status.code = .error; $0.attributes = [Self.keyValue("a") { $0.intValue = 1 }] })
        let b = bytes(Self.span(2) { $0.status.message = "late"; $0.attributes = [Self.keyValue("a") { $0.intValue = 2 }] })
        let c = bytes(Self.span(3) { $0.status.code = .ok; $0.spanID = Data() })
        let list = bytes(Opentelemetry_Proto_Common_V1_AnyValue.with { $0.arrayValue.values = [.with { $0.intValue = 1 }] })
        let text = bytes(Opentelemetry_Proto_Common_V1_AnyValue.with { $0.stringValue = "text" })
        let resource = bytes(Opentelemetry_Proto_Resource_V1_Resource.with { $0.attributes = Self.resource })
        let merged = bytes(Opentelemetry_Proto_Resource_V1_Resource.with {
            $0.attributes = [Self.keyValue("k8s.namespace.name") { $0.stringValue = "payments" }]
        })
        for value in [list + list, list + text, text + list, list + text + list] {
            let attribute = field(9, field(1, Array("merged".utf8)) + field(2, value))
            let span = a + attribute
            let body = field(1, field(1, resource) + field(2, field(2, span)) + field(1, merged))
            try agree(body, "merged attribute value")
        }
        for span in [a + b, b + a, a + c, a + b + c] {
            try agree(field(1, field(2, field(2, span)) + field(1, resource)), "merged span")
        }
    }

    @Test func decodersAgreeOnFieldsWithAnotherWireType() throws {
        let good = bytes(Self.span(1))
        // trace_id as a varint, kind as a length-delimited field, start time as a fixed32: unknown fields.
        for odd in [[0x08, 0x01], [0x32, 0x01, 0x02], [0x3D, 1, 2, 3, 4], [0x4A, 0x00], [0x5B, 0x08, 0x01, 0x5C]] as [[UInt8]] {
            try agree(field(1, field(2, field(2, good + odd))), "span + \(odd)")
            try agree(field(1, field(2, field(2, odd + good))), "\(odd) + span")
        }
        try agree([0x08, 0x01] + field(1, field(2, field(2, good))), "a varint resource_spans")
    }

    @Test func decodersRefuseTheSameBrokenBodies() throws {
        let good = bytes(Self.request(resource: Self.resource, Self.spans))
        let broken: [[UInt8]] = [
            [0x0A, 0x05, 0x01],  // length past the end
            [0x00],  // field number 0
            [0x0F],  // wire type 7
            [0x0C],  // an end-group tag outside a group
            [0x08] + Array(repeating: 0xFF, count: 10) + [0x01],  // an 11-byte varint
            [0x0B],  // a group without its end
            [0x0B, 0x14],  // a group closed by another field's end tag
            [0x09, 1, 2, 3],  // a truncated fixed64
            Array(good.dropLast()),
            field(1, field(2, field(2, field(5, [0xC3, 0x28])))),  // a span name that is not UTF-8
            field(1, field(2, field(2, field(9, field(1, [0xFF]))))),  // an attribute key that is not UTF-8
        ]
        for body in broken {
            #expect(decodeOld(body) == nil, "\(body.prefix(16))")
            #expect(throws: DecodeError.self) { try OTLPTraceDecoder().decode(protobuf: body) }
        }
        // Nesting deeper than SwiftProtobuf's limit of 100 messages.
        // Request, resource spans, scope spans, span, key-value and value are 6; each array adds 2.
        for (arrays, refused) in [(47, false), (48, true)] {
            var value = bytes(Opentelemetry_Proto_Common_V1_AnyValue.with { $0.intValue = 1 })
            for _ in 0..<arrays { value = field(5, field(1, value)) }
            let deep = field(1, field(2, field(2, bytes(Self.span(1)) + field(9, field(1, [0x61]) + field(2, value)))))
            #expect((decodeOld(deep) == nil) == refused, "\(arrays) arrays")
            #expect((decodeNew(deep) == nil) == refused, "\(arrays) arrays")
        }
    }

    @Test func mutatedBodiesDecodeAlikeWhenSwiftProtobufAcceptsThem() throws {
        var bodies = try Fixtures.files(in: "envoy/otlp/traces", suffix: ".pb").prefix(3).map { try Fixtures.bytes($0) }
        bodies.append(bytes(Self.request(resource: Self.resource, Self.spans)))
        var accepted = 0
        for (n, body) in bodies.enumerated() {
            for (m, mutated) in mutations(of: body, seed: UInt64(n + 1) * 7919).enumerated() {
                let old = decodeOld(mutated)
                let new = decodeNew(mutated)
                // The wire decoder reads only the fields the model uses: it may accept a body whose
                // unread parts SwiftProtobuf refuses (a string that is not UTF-8, say), never the reverse.
                if let old {
                    accepted += 1
                    guard let new else {
                        Issue.record("body \(n) mutation \(m): refused by the wire decoder only")
                        continue
                    }
                    expectSame(new, old, "body \(n) mutation \(m)")
                }
            }
        }
        #expect(accepted > 100)
    }
}

// MARK: - Envoy ALS

/// The wire decoder against the SwiftProtobuf-message decoder it replaces.
@Suite struct EnvoyALSDifferentialTests {
    private let proxy = NodeIdentity.workload(pod: "reviews-v2-7d8f9c6b4d-x2k9p", namespace: "default")

    private func decodeOld(_ body: [UInt8]) -> (ALSMessage.Identifier?, IngestBatch)? {
        guard let message = try? ALSMessage(serializedBytes: body) else { return nil }
        return (message.hasIdentifier ? message.identifier : nil, LegacyEnvoyALSDecoder().decode(message, proxy: proxy))
    }

    private func decodeNew(_ body: [UInt8]) -> (ALSMessage.Identifier?, IngestBatch)? {
        let decoder = EnvoyALSDecoder()
        do {
            return (try decoder.identifier(protobuf: body), try decoder.decode(protobuf: body, proxy: proxy))
        } catch {
            return nil
        }
    }

    private func refusal(_ body: [UInt8]) -> String {
        do {
            _ = try EnvoyALSDecoder().identifier(protobuf: body)
            _ = try EnvoyALSDecoder().decode(protobuf: body, proxy: proxy)
            return "accepted"
        } catch {
            return error.message
        }
    }

    private func agree(_ body: [UInt8], _ note: String) throws {
        let old = try #require(decodeOld(body), "\(note): SwiftProtobuf refuses it")
        let new = try #require(decodeNew(body), "\(note): the wire decoder refuses it: \(refusal(body))")
        #expect(new.0 == old.0, "\(note)")
        expectSame(new.1, old.1, note)
    }

    private static func entry(_ edit: (inout HTTPEntry) -> Void) -> HTTPEntry {
        var entry = HTTPEntry()
        entry.commonProperties.startTime = .init(seconds: 1_795_706_850, nanos: 714_252_000)
        entry.commonProperties.duration = .init(seconds: 0, nanos: 12_000_000)
        entry.commonProperties.upstreamCluster = "outbound|9080||ratings.default.svc.cluster.local"
        entry.request.authority = "ratings:9080"
        entry.response.responseCode = .init(200)
        edit(&entry)
        return entry
    }

    private static func socket(_ address: String, port: UInt32? = nil, named: String? = nil)
        -> Envoy_Config_Core_V3_Address
    {
        .with {
            $0.socketAddress.address = address
            if let port { $0.socketAddress.portValue = port }
            if let named { $0.socketAddress.namedPort = named }
        }
    }

    fileprivate static let entries: [HTTPEntry] = [
        entry { _ in },
        entry { $0.commonProperties.clearStartTime() },
        entry { $0.commonProperties.startTime.seconds = 9_223_372_036_854_775 },
        entry { $0.commonProperties.duration.seconds = -1 },
        entry { $0.commonProperties.clearDuration() },
        entry { $0.commonProperties.intermediateLogEntry = true },
        entry { $0.commonProperties.accessLogType = .downstreamPeriodic },
        entry { $0.commonProperties.accessLogType = .downstreamEnd },
        entry {
            $0.commonProperties.upstreamCluster = "inbound|9080||"
            $0.commonProperties.tlsProperties.localCertificateProperties.subjectAltName = [
                .with { $0.dns = "ratings" }, .with { $0.uri = "" },
                .with { $0.uri = "spiffe://cluster.local/ns/default/sa/bookinfo-ratings" },
            ]
            $0.commonProperties.tlsProperties.peerCertificateProperties.subjectAltName = [
                .with { $0.uri = "spiffe://cluster.local/ns/default/sa/bookinfo-reviews" }
            ]
            $0.commonProperties.downstreamRemoteAddress = socket("10.0.0.9", port: 51_234)
            $0.commonProperties.downstreamLocalAddress = socket("fe80::1", port: 9080)
        },
        entry {
            $0.commonProperties.upstreamCluster = "inbound|9080||"
            $0.request.authority = ""
            $0.commonProperties.tlsProperties.localCertificateProperties.subjectAltName = [.with { $0.uri = "spiffe://a" }]
        },
        entry {
            $0.commonProperties.upstreamRemoteAddress = socket("127.0.0.1", named: "http")
            $0.commonProperties.upstreamLocalAddress = socket("127.0.0.1")
            $0.commonProperties.downstreamRemoteAddress = .with { $0.pipe.path = "/tmp/sock" }
        },
        entry {
            $0.commonProperties.upstreamCluster = ""
            $0.request.authority = ""
            $0.commonProperties.upstreamRemoteAddress = socket("", port: 80)
        },
        entry { $0.commonProperties.upstreamCluster = "BlackHoleCluster" },
        entry { $0.commonProperties.upstreamCluster = "PassthroughCluster"; $0.request.authority = "" },
        entry {
            $0.commonProperties.responseFlags = .with {
                $0.noHealthyUpstream = true
                $0.upstreamRetryLimitExceeded = true
                $0.unauthorizedDetails = .init()
                $0.downstreamRemoteReset = true
                $0.failedLocalHealthcheck = true
            }
        },
        entry { $0.commonProperties.responseFlags = .init() },
        entry {
            $0.request.requestHeaders = [
                "x-b3-traceid": "463AC35C9F6413AD48485A3953BB6124", "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ]
            $0.request.requestID = "req-1"
            $0.commonProperties.streamID = "stream-1"
        },
        entry {
            $0.request.requestHeaders = [
                "x-b3-traceid": "not hex", "traceparent": "00--0af7651916cd43dd8448eb211c80319c--b7ad6b7169203331-01",
            ]
            $0.commonProperties.streamID = "stream-2"
        },
        entry { $0.request.requestHeaders = ["traceparent": "00-0af7651916cd43dd-b7ad6b7169203331"] },
        entry {
            $0.response.responseTrailers = ["grpc-status": "14"]
            $0.response.responseHeaders = ["grpc-status": "0"]
        },
        entry { $0.response.responseHeaders = ["grpc-status": "+7", "content-type": "application/grpc"] },
        entry { $0.response.responseTrailers = ["grpc-status": "x"]; $0.response.responseHeaders = ["grpc-status": "2"] },
        entry {
            $0.clearResponse()
            $0.request.requestBodyBytes = UInt64.max
            $0.response.responseBodyBytes = 12
        },
    ]

    fileprivate static let tcpEntries: [TCPEntry] = [
        .with {
            $0.commonProperties.startTime = .init(seconds: 1_795_706_850, nanos: 0)
            $0.commonProperties.duration = .init(seconds: 2, nanos: 5000)
            $0.commonProperties.upstreamCluster = "inbound|27017||"
            $0.connectionProperties.receivedBytes = 120
            $0.connectionProperties.sentBytes = 4096
        },
        .with {
            $0.commonProperties.startTime = .init(seconds: 1_795_706_850, nanos: 0)
            $0.commonProperties.upstreamCluster = "outbound|27017||mongodb.default.svc.cluster.local"
            $0.commonProperties.accessLogType = .tcpConnectionEnd
            $0.commonProperties.responseFlags.upstreamConnectionFailure = true
            $0.commonProperties.upstreamRemoteAddress = socket("10.0.3.4", port: 27017)
        },
        .with { $0.commonProperties.accessLogType = .tcpPeriodic },
        .with { $0.commonProperties.startTime.seconds = Int64.min },
        .init(),
    ]

    @Test func decodersAgreeOnEveryFixtureAndSeed() throws {
        var bodies = try ["productpage-v1", "ratings-v1"].flatMap { workload in
            try Fixtures.files(in: "envoy/als/\(workload)", suffix: ".pb").map { try Fixtures.bytes($0) }
        }
        bodies += fuzzInputs("envoy-als")
        #expect(bodies.count > 7)
        for (n, body) in bodies.enumerated() { try agree(body, "body \(n)") }
    }

    @Test func decodersAgreeOnHandMadeEntries() throws {
        try agree(bytes(ALSMessage.with { $0.httpLogs.logEntry = Self.entries }), "http entries")
        try agree(bytes(ALSMessage.with { $0.tcpLogs.logEntry = Self.tcpEntries }), "tcp entries")
        try agree([], "an empty message")
        let http = bytes(ALSMessage.with { $0.httpLogs.logEntry = Array(Self.entries.prefix(3)) })
        let tcp = bytes(ALSMessage.with { $0.tcpLogs.logEntry = Self.tcpEntries })
        let identifier = bytes(ALSMessage.with { $0.identifier.logName = "als"; $0.identifier.node.id = "sidecar~a~b.c~d" })
        let other = bytes(ALSMessage.with { $0.identifier.node.cluster = "reviews" })
        // `log_entries` is a oneof: the last member wins, repeats in a row merge; identifiers merge.
        for body in [http + http, http + tcp, tcp + http, http + tcp + http + http, identifier + http + other] {
            try agree(body, "merged message")
        }
        // Merged entries: two encodings of an entry back to back.
        let a = bytes(Self.entries[8])
        let b = bytes(Self.entries[10])
        let c = bytes(Self.entries[16])
        for entry in [a + b, b + a, a + c + a] {
            try agree(field(2, field(1, entry)), "merged entry")
        }
    }

    @Test func decodersRefuseTheSameBrokenBodies() throws {
        let good = bytes(ALSMessage.with { $0.httpLogs.logEntry = Self.entries })
        let broken: [[UInt8]] = [
            [0x12, 0x05, 0x01], [0x00], [0x0F], [0x14], [0x0B], Array(good.dropLast()),
            field(2, field(1, field(1, field(15, [0xC3, 0x28])))),  // an upstream cluster that is not UTF-8
            field(2, field(1, field(3, field(13, field(1, [0xFF]))))),  // a header name that is not UTF-8
            field(1, field(1, field(1, [0xFF]))),  // a node id that is not UTF-8
        ]
        for body in broken {
            #expect(decodeOld(body) == nil, "\(body.prefix(16))")
            #expect(decodeNew(body) == nil, "\(body.prefix(16))")
        }
    }

    @Test func mutatedBodiesDecodeAlikeWhenSwiftProtobufAcceptsThem() throws {
        var bodies = try Fixtures.files(in: "envoy/als/productpage-v1", suffix: ".pb").prefix(3).map {
            try Fixtures.bytes($0)
        }
        bodies.append(bytes(ALSMessage.with { $0.httpLogs.logEntry = Self.entries }))
        bodies.append(bytes(ALSMessage.with { $0.tcpLogs.logEntry = Self.tcpEntries }))
        var accepted = 0
        for (n, body) in bodies.enumerated() {
            for (m, mutated) in mutations(of: body, seed: UInt64(n + 3) * 104_729).enumerated() {
                guard let old = decodeOld(mutated) else { continue }
                accepted += 1
                guard let new = decodeNew(mutated) else {
                    Issue.record("body \(n) mutation \(m): refused by the wire decoder only")
                    continue
                }
                #expect(new.0 == old.0, "body \(n) mutation \(m)")
                expectSame(new.1, old.1, "body \(n) mutation \(m)")
            }
        }
        #expect(accepted > 100)
    }
}

/// The remote-write decoder against SwiftProtobuf: the points and rejections the generated
/// message gives, decoded the way the spec says, on the fuzz corpus, hand-made requests and
/// mutations of them.
@Suite struct RemoteWriteDifferentialTests {
    /// What a `WriteRequest` means, read through SwiftProtobuf's generated message.
    private static func reference(_ body: [UInt8]) -> IngestBatch? {
        guard let request = try? Prometheus_WriteRequest(serializedBytes: body) else { return nil }
        var kinds: [String: MetricPoint.Kind] = [:]
        for metadata in request.metadata {
            switch metadata.type {
            case .counter: kinds[metadata.metricFamilyName] = .counter
            case .gauge: kinds[metadata.metricFamilyName] = .gauge
            case .histogram: kinds[metadata.metricFamilyName] = .histogram
            case .summary: kinds[metadata.metricFamilyName] = .summary
            default: break
            }
        }
        var batch = IngestBatch()
        for (index, series) in request.timeseries.enumerated() {
            guard let name = series.labels.first(where: { $0.name == "__name__" })?.value, !name.isEmpty else {
                batch.rejected.append(RecordError(location: "timeseries[\(index)]", message: "no __name__ label"))
                continue
            }
            let labels = series.labels.filter { $0.name != "__name__" }.map { MetricLabelPair($0.name, $0.value) }
            guard Set(labels.map(\.name)).count == labels.count, !labels.contains(where: { $0.name.isEmpty || $0.value.isEmpty }) else {
                batch.rejected.append(
                    RecordError(location: "timeseries[\(index)]", message: "labels of '\(name.prefix(80))' are duplicated or empty"))
                continue
            }
            let (family, kind) = RemoteWriteDecoder.family(of: name, kinds: kinds)
            for sample in series.samples where sample.value.bitPattern != 0x7ff0_0000_0000_0002 {
                batch.metrics.append(
                    MetricPoint(name: name, family: family, kind: kind, labels: labels, value: sample.value, timestampMs: sample.timestamp))
            }
        }
        return batch
    }

    private static func expectAlike(_ body: [UInt8], _ note: String) {
        let new = try? RemoteWriteDecoder().decode(protobuf: body)
        guard let old = reference(body) else {
            #expect(new == nil, "SwiftProtobuf refuses \(note); the decoder took it")
            return
        }
        guard let new else {
            Issue.record("the decoder refuses \(note); SwiftProtobuf took it")
            return
        }
        // NaN values compare unequal: compare their bits.
        #expect(new.metrics.count == old.metrics.count, "\(note)")
        for (a, b) in zip(new.metrics, old.metrics) {
            var x = a
            var y = b
            #expect(a.value.bitPattern == b.value.bitPattern, "\(note)")
            x.value = 0
            y.value = 0
            #expect(x == y, "\(note)")
        }
        #expect(new.rejected == old.rejected, "\(note)")
    }

    private static func handMade() throws -> [[UInt8]] {
        func series(_ labels: [(String, String)], _ samples: [(Double, Int64)]) -> Prometheus_TimeSeries {
            .with { s in
                s.labels = labels.map { pair in .with { $0.name = pair.0; $0.value = pair.1 } }
                s.samples = samples.map { pair in .with { $0.value = pair.0; $0.timestamp = pair.1 } }
            }
        }
        var request = Prometheus_WriteRequest()
        request.timeseries = [
            series([("__name__", "http_requests_total"), ("code", "200"), ("job", "api")], [(1, 1000), (2, 2000)]),
            series([("job", "api"), ("__name__", "rq_bucket"), ("le", "+Inf")], [(.nan, 5), (-0.0, -7)]),
            series([("__name__", "x"), ("a", "1"), ("a", "2")], [(1, 1)]),
            series([("__name__", "x"), ("a", "")], [(1, 1)]),
            series([("__name__", ""), ("a", "b")], [(1, 1)]),
            series([("__name__", "up"), ("__name__", "down"), ("é", "✓")], [(Double(bitPattern: 0x7ff0_0000_0000_0002), 1), (3, .max)]),
            series([("__name__", "rq_sum")], []),
        ]
        request.metadata = [
            .with { $0.type = .histogram; $0.metricFamilyName = "rq"; $0.help = "Requests." },
            .with { $0.type = .gaugehistogram; $0.metricFamilyName = "up" },
        ]
        return [try request.serializedBytes(), []]
    }

    @Test func decodersAgreeOnHandMadeRequestsAndTheCorpus() throws {
        for (n, body) in try Self.handMade().enumerated() { Self.expectAlike(body, "hand-made \(n)") }
        for (n, body) in fuzzInputs("remote-write").enumerated() { Self.expectAlike(body, "corpus \(n)") }
    }

    @Test func mutatedRequestsDecodeAlike() throws {
        var bodies = try Self.handMade()
        bodies += fuzzInputs("remote-write").prefix(8)
        for (n, body) in bodies.enumerated() {
            for (m, changed) in mutations(of: body, seed: UInt64(n + 1)).enumerated() {
                Self.expectAlike(changed, "mutation \(m) of body \(n)")
            }
        }
    }
}
