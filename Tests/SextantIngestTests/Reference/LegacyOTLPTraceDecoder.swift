import Foundation
import SextantModel
import SextantWire
@testable import SextantIngest

/// The SwiftProtobuf-message decoder that `OTLPTraceDecoder` replaces (kept as the
/// reference of the differential tests).
///
/// Turns an OTLP `ExportTraceServiceRequest` into spans, and the calls the spans observed:
/// Envoy proxy spans as Envoy reports them (`EnvoySpanMapper`), application (SDK) spans as the
/// OpenTelemetry servicegraph connector reads them (`SDKSpanMapper`).
/// Spec: https://opentelemetry.io/docs/specs/otlp/
struct LegacyOTLPTraceDecoder: Sendable {
    init() {}

    func decode(_ request: Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest) -> IngestBatch {
        var batch = IngestBatch()
        for (r, resourceSpans) in request.resourceSpans.enumerated() {
            let resource = ResourceIdentity(resourceSpans.resource)
            let nodeID = resource.attributes["service.instance.id"]
            for (s, scope) in resourceSpans.scopeSpans.enumerated() {
                for (i, otlp) in scope.spans.enumerated() {
                    let location = "resource_spans[\(r)].scope_spans[\(s)].spans[\(i)]"
                    do throws(RecordError) {
                        let span = try Self.span(otlp, service: resource.service, location: location)
                        batch.spans.append(span)
                        if let call = EnvoySpanMapper.request(from: span, nodeID: nodeID)
                            ?? SDKSpanMapper.request(from: span, proxy: resource.workload)
                        {
                            batch.requests.append(call)
                        }
                    } catch {
                        batch.rejected.append(error)
                    }
                }
            }
        }
        return batch
    }

    static func span(_ s: Opentelemetry_Proto_Trace_V1_Span, service: String, location: String) throws(RecordError)
        -> Span
    {
        func fail(_ message: String) -> RecordError { RecordError(location: location, message: message) }
        guard s.traceID.count == 16, s.traceID.contains(where: { $0 != 0 }) else {
            throw fail("trace_id must be 16 bytes, not all zero (got \(s.traceID.count))")
        }
        guard s.spanID.count == 8, s.spanID.contains(where: { $0 != 0 }) else {
            throw fail("span_id must be 8 bytes, not all zero (got \(s.spanID.count))")
        }
        guard s.parentSpanID.isEmpty || s.parentSpanID.count == 8 else {
            throw fail("parent_span_id must be empty or 8 bytes (got \(s.parentSpanID.count))")
        }
        guard s.startTimeUnixNano > 0 else { throw fail("start_time_unix_nano is missing") }
        guard s.endTimeUnixNano >= s.startTimeUnixNano else {
            throw RecordError(
                location: location, message: "end_time_unix_nano is before start_time_unix_nano", reason: .negativeDuration)
        }
        let kind: Span.Kind
        switch s.kind {
        case .server: kind = .server
        case .client: kind = .client
        case .producer: kind = .producer
        case .consumer: kind = .consumer
        default: kind = .unspecified
        }
        var tags = Attributes(s.attributes.textMap)
        if s.status.code == .error {
            tags["otel.status_code"] = "ERROR"
            if !s.status.message.isEmpty { tags["otel.status_description"] = s.status.message }
        }
        return Span(
            traceID: TraceID(bytes: s.traceID)!,
            spanID: SpanID(bytes: s.spanID)!,
            parentID: SpanID(bytes: s.parentSpanID),
            kind: kind,
            name: s.name,
            startMicros: Int64(s.startTimeUnixNano / 1000),
            durationMicros: Int64((s.endTimeUnixNano - s.startTimeUnixNano) / 1000),
            localEndpoint: Span.Endpoint(serviceName: service),
            remoteEndpoint: SDKSpanMapper.peer(of: tags).map { Span.Endpoint(serviceName: $0) },
            annotations: s.events.map { Span.Annotation(timestampMicros: Int64($0.timeUnixNano / 1000), value: $0.name) },
            tags: tags,
            // Zipkin's `error` tag marks an error too (spans a Sextant forwarded from Zipkin).
            isError: s.status.code == .error || tags["error"] != nil
        )
    }
}
