import Foundation
import SextantFixtures
import SextantIngest
import SextantModel
import SextantWire
import Testing

/// Spans forwarded over OTLP (`OTLPExportEncoder`) come back from `OTLPTraceDecoder` as they were
/// stored: what a Sextant receiving another's export shows is the same trace.
@Suite struct OTLPExportEncoderTests {
    @Test func envoyZipkinSpansSurviveTheTripThroughOTLP() throws {
        var spans: [Span] = []
        var calls: [CallReport] = []
        for file in try Fixtures.files(in: "envoy/zipkin", suffix: ".json") {
            let batch = try ZipkinV2Decoder().decode(json: Fixtures.bytes(file))
            spans += batch.spans
            calls += batch.requests
        }
        #expect(spans.count > 100)
        let back = try OTLPTraceDecoder().decode(protobuf: OTLPExportEncoder.traces(spans))
        #expect(back.rejected.isEmpty)
        // Grouped by service on the way: compare span by span, in one order.
        func order(_ a: Span, _ b: Span) -> Bool {
            (a.traceID, a.spanID.value, a.kind.rawValue) < (b.traceID, b.spanID.value, b.kind.rawValue)
        }
        let sent = spans.sorted(by: order)
        let received = back.spans.sorted(by: order)
        #expect(received.count == sent.count)
        let differing = zip(sent, received).filter { $0.0 != $0.1 }
        #expect(differing.isEmpty, "first differing span: \(differing.first.map { "\($0.0.traceID)/\($0.0.spanID)" } ?? "")")
        // The receiving side finds the same calls in them.
        #expect(back.requests.count == calls.count)
        #expect(Set(back.requests.map(\.proxy.workload)) == Set(calls.map(\.proxy.workload)))
    }

    @Test func otlpSpansWithStatusAndZipkinOnlyFieldsSurvive() throws {
        let error = Span(
            traceID: "0af7651916cd43dd8448eb211c80319c", spanID: SpanID(0xb7ad_6b71_6920_3331),
            parentID: SpanID(0x1111), kind: .client, name: "GET /x", startMicros: 1_700_000_000_000_000,
            durationMicros: 1_234,
            localEndpoint: Span.Endpoint(serviceName: "web", ipv4: "10.0.0.1", port: 8080),
            remoteEndpoint: Span.Endpoint(serviceName: "db", ipv6: "::1", port: 5432),
            annotations: [Span.Annotation(timestampMicros: 1_700_000_000_000_100, value: "retry")],
            tags: ["http.method": "GET", "otel.status_code": "ERROR", "otel.status_description": "boom"],
            isError: true, shared: true, debug: true)
        let zipkinError = Span(
            traceID: "0af7651916cd43dd8448eb211c80319c", spanID: SpanID(0x2222), kind: .server, name: "get",
            startMicros: 1_700_000_000_000_000, durationMicros: 10, localEndpoint: Span.Endpoint(serviceName: "api"),
            tags: ["error": "timeout"])
        let fine = Span(
            traceID: "0af7651916cd43dd8448eb211c80319c", spanID: SpanID(0x3333), startMicros: 1_700_000_000_000_000,
            durationMicros: 0, localEndpoint: Span.Endpoint(serviceName: "web"))
        let back = try OTLPTraceDecoder().decode(protobuf: OTLPExportEncoder.traces([error, zipkinError, fine]))
        #expect(back.rejected.isEmpty)
        // Grouped by service: web's two spans come first.
        #expect(back.spans == [error, fine, zipkinError])
        #expect(back.spans.map(\.isError) == [true, false, true])
    }

    @Test func logRecordsSurviveTheTrip() throws {
        let record = LogRecord(
            timeMicros: 1_700_000_000_000_001, service: "reviews", severityNumber: 17, severityText: "ERROR",
            body: "rating service down", traceID: "0af7651916cd43dd8448eb211c80319c", spanID: "b7ad6b7169203331",
            attributes: ["thread": "main", "code.lineno": "42"])
        let request = try Opentelemetry_Proto_Collector_Logs_V1_ExportLogsServiceRequest(
            serializedBytes: OTLPExportEncoder.logs([record]))
        let back = OTLPLogDecoder().decode(request)
        #expect(back.logs == [record])
        #expect(back.rejected.isEmpty)
    }
}
