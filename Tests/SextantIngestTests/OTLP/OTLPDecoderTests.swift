import Foundation
import SextantFixtures
import SextantIngest
import SextantModel
import SextantWire
import Testing

private func keyValue(_ key: String, _ value: String) -> Opentelemetry_Proto_Common_V1_KeyValue {
    var kv = Opentelemetry_Proto_Common_V1_KeyValue()
    kv.key = key
    kv.value.stringValue = value
    return kv
}

private func otlpSpan(
    trace: UInt8, id: UInt8, parent: UInt8?, kind: Opentelemetry_Proto_Trace_V1_Span.SpanKind,
    attributes: [Opentelemetry_Proto_Common_V1_KeyValue] = [], error: Bool = false
) -> Opentelemetry_Proto_Trace_V1_Span {
    var span = Opentelemetry_Proto_Trace_V1_Span()
    span.traceID = Data(repeating: trace, count: 16)
    span.spanID = Data(repeating: id, count: 8)
    if let parent { span.parentSpanID = Data(repeating: parent, count: 8) }
    span.kind = kind
    span.name = "op"
    span.startTimeUnixNano = 1_795_706_850_000_000_000
    span.endTimeUnixNano = 1_795_706_850_012_000_000
    span.attributes = attributes
    if error { span.status.code = .error }
    return span
}

private func resourceSpans(service: String, namespace: String, _ spans: [Opentelemetry_Proto_Trace_V1_Span])
    -> Opentelemetry_Proto_Trace_V1_ResourceSpans
{
    var r = Opentelemetry_Proto_Trace_V1_ResourceSpans()
    r.resource.attributes = [keyValue("service.name", service), keyValue("service.namespace", namespace)]
    var scope = Opentelemetry_Proto_Trace_V1_ScopeSpans()
    scope.spans = spans
    r.scopeSpans = [scope]
    return r
}

@Suite struct OTLPTraceDecoderTests {
    @Test func decodesEnvoysOpenTelemetryTracerSpansIntoProxyCalls() throws {
        var spans = 0
        var calls: [CallReport] = []
        for file in try Fixtures.files(in: "envoy/otlp/traces", suffix: ".pb") {
            let request = try Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest(
                serializedBytes: Fixtures.bytes(file))
            let batch = try OTLPTraceDecoder().decode(protobuf: request.serializedBytes())
            #expect(batch.rejected.isEmpty)
            spans += batch.spans.count
            calls += batch.requests
        }
        #expect(spans == 43)
        #expect(calls.count == 43)
        #expect(Set(calls.map(\.proxy.workload)) == Set(Fixtures.workloads))
        #expect(calls.allSatisfy { $0.requestID != nil && $0.spanID != nil && $0.traceID != nil })
    }

    @Test func readsSDKSpansAsTheServicegraphConnectorDoes() throws {
        var request = Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest()
        request.resourceSpans = [
            resourceSpans(service: "frontend", namespace: "shop", [
                otlpSpan(trace: 1, id: 1, parent: nil, kind: .server),
                otlpSpan(trace: 1, id: 2, parent: 1, kind: .client, attributes: [keyValue("server.address", "checkout")]),
            ]),
            resourceSpans(service: "checkout", namespace: "shop", [
                otlpSpan(trace: 1, id: 3, parent: 2, kind: .server, error: true),
                otlpSpan(
                    trace: 1, id: 4, parent: 3, kind: .client,
                    attributes: [keyValue("db.system", "postgresql"), keyValue("db.name", "orders")]),
                otlpSpan(trace: 1, id: 5, parent: 3, kind: .internal),
            ]),
        ]
        let batch = try OTLPTraceDecoder().decode(protobuf: request.serializedBytes())
        #expect(batch.spans.count == 5)
        #expect(batch.requests.count == 4)
        let checkoutServer = try #require(batch.requests.first { $0.spanID?.hex == String(repeating: "03", count: 8) })
        #expect(checkoutServer.reporter == .destination)
        #expect(checkoutServer.proxy.workload == "checkout")
        #expect(checkoutServer.proxy.namespace == "shop")
        #expect(checkoutServer.responseCode == 500)
        #expect(checkoutServer.parentSpanID?.hex == String(repeating: "02", count: 8))
        let database = try #require(batch.requests.first { $0.spanID?.hex == String(repeating: "04", count: 8) })
        #expect(database.reporter == .source)
        #expect(database.service.name == "orders")
        #expect(batch.spans.first { $0.spanID.hex == String(repeating: "04", count: 8) }?.remoteEndpoint?.serviceName
            == "orders")
    }

    @Test func rejectsSpansWithBadIdsAndKeepsTheRest() throws {
        var bad = otlpSpan(trace: 1, id: 9, parent: nil, kind: .server)
        bad.traceID = Data([1, 2, 3])
        var request = Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest()
        request.resourceSpans = [
            resourceSpans(service: "a", namespace: "x", [bad, otlpSpan(trace: 2, id: 1, parent: nil, kind: .server)])
        ]
        let batch = try OTLPTraceDecoder().decode(protobuf: request.serializedBytes())
        #expect(batch.spans.count == 1)
        #expect(batch.rejected.map(\.description) == [
            "resource_spans[0].scope_spans[0].spans[0]: trace_id must be 16 bytes, not all zero (got 3)"
        ])
    }

    @Test func readsOTLPJSONWithHexIds() throws {
        let json = """
            {"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"frontend"}}]},
             "scopeSpans":[{"spans":[{"traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"EEE19B7EC3C1B174",
              "name":"GET /","kind":2,"startTimeUnixNano":"1544712660000000000","endTimeUnixNano":"1544712661000000000"}]}]}]}
            """
        let data = try OTLPJSON.protobufJSON(from: Array(json.utf8))
        let request = try Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest(jsonUTF8Bytes: data)
        let batch = try OTLPTraceDecoder().decode(protobuf: request.serializedBytes())
        #expect(batch.spans.first?.traceID == "5b8efff798038103d269b633813fc60c")
        #expect(batch.spans.first?.spanID == "eee19b7ec3c1b174")
        #expect(batch.spans.first?.durationMicros == 1_000_000)
        #expect(throws: DecodeError.self) { try OTLPJSON.protobufJSON(from: Array(#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"xyz"}]}]}]}"#.utf8)) }
    }

    /// An enum given as a number beyond int32 (found by the fuzzer): SwiftProtobuf would keep it
    /// and then write more bytes than it sized the message for, so it is refused up front.
    @Test func refusesOTLPJSONEnumNumbersBeyondInt32() throws {
        for (key, value) in [("kind", "4294967297"), ("kind", "-2147483649"), ("code", "1e10")] {
            let json = #"{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":"x","\#(key)":\#(value)}]}]}]}"#
            let error = #expect(throws: DecodeError.self) { try OTLPJSON.protobufJSON(from: Array(json.utf8)) }
            #expect(error?.message == "'\(key)' must be an enum number within int32, got \(value)")
        }
        let inRange = #"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"severityNumber":-2147483648}]}]}]}"#
        #expect(try OTLPJSON.protobufJSON(from: Array(inRange.utf8)) == Array(inRange.utf8))
    }
}

@Suite struct OTLPLogDecoderTests {
    @Test func readsEnvoysOpenTelemetryAccessLogsAsCalls() throws {
        var calls: [CallReport] = []
        for file in try Fixtures.files(in: "envoy/otlp/logs", suffix: ".pb") {
            let request = try Opentelemetry_Proto_Collector_Logs_V1_ExportLogsServiceRequest(
                serializedBytes: Fixtures.bytes(file))
            let batch = OTLPLogDecoder().decode(request)
            #expect(batch.rejected.isEmpty, "\(batch.rejected)")
            #expect(batch.logs.isEmpty)
            calls += batch.requests
        }
        #expect(calls.count == 85)
        #expect(calls.allSatisfy { $0.channel == .otlpLogs && $0.traceID != nil })
        #expect(Set(calls.map(\.proxy.workload)) == Set(Fixtures.workloads))
    }

    @Test func keepsApplicationLogsAsRecords() {
        var record = Opentelemetry_Proto_Logs_V1_LogRecord()
        record.timeUnixNano = 1_795_706_850_000_000_000
        record.severityNumber = .error
        record.severityText = "ERROR"
        record.body.stringValue = "payment declined"
        record.traceID = Data(repeating: 0xab, count: 16)
        record.attributes = [keyValue("order.id", "42")]
        var scope = Opentelemetry_Proto_Logs_V1_ScopeLogs()
        scope.logRecords = [record]
        var resource = Opentelemetry_Proto_Logs_V1_ResourceLogs()
        resource.resource.attributes = [keyValue("service.name", "checkout")]
        resource.scopeLogs = [scope]
        var request = Opentelemetry_Proto_Collector_Logs_V1_ExportLogsServiceRequest()
        request.resourceLogs = [resource]
        let batch = OTLPLogDecoder().decode(request)
        #expect(batch.logs.count == 1)
        #expect(batch.logs.first?.service == "checkout")
        #expect(batch.logs.first?.severityNumber == 17)
        #expect(batch.logs.first?.body == "payment declined")
        #expect(batch.logs.first?.traceID == String(repeating: "ab", count: 16))
        #expect(batch.logs.first?.attributes["order.id"] == "42")
    }
}

@Suite struct ZipkinProtoDecoderTests {
    @Test func decodesListOfSpansLikeTheJSONForm() throws {
        let json = try ZipkinV2Decoder().decode(json: Fixtures.bytes("envoy/zipkin/batch-001.json"))
        var list = Zipkin_Proto3_ListOfSpans()
        for span in json.spans {
            var p = Zipkin_Proto3_Span()
            p.traceID = Data(hex: span.traceID.hex)
            p.id = Data(hex: span.spanID.hex)
            if let parent = span.parentID { p.parentID = Data(hex: parent.hex) }
            p.kind = span.kind == .client ? .client : .server
            p.name = span.name
            p.timestamp = UInt64(span.startMicros)
            p.duration = UInt64(span.durationMicros)
            p.localEndpoint.serviceName = span.serviceName
            p.localEndpoint.ipv4 = Data([192, 0, 2, 2])
            p.tags = span.tags.dictionary
            list.spans.append(p)
        }
        let proto = try ZipkinProtoDecoder().decode(protobuf: try list.serializedBytes())
        #expect(proto.spans.map(\.spanID) == json.spans.map(\.spanID))
        #expect(proto.spans.first?.localEndpoint?.ipv4 == "192.0.2.2")
        #expect(proto.requests.count == json.requests.count)
        #expect(throws: DecodeError.self) { try ZipkinProtoDecoder().decode(protobuf: [0x0A, 0xFF, 0x01]) }
    }
}

extension Data {
    init(hex: String) {
        var bytes: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            bytes.append(UInt8(hex[index..<next], radix: 16)!)
            index = next
        }
        self.init(bytes)
    }
}
