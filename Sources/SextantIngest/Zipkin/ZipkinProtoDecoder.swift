internal import Foundation
internal import SwiftProtobuf
package import SextantModel
internal import SextantWire

/// Decodes Zipkin v2 protobuf (`application/x-protobuf`, `zipkin.proto3.ListOfSpans`).
package struct ZipkinProtoDecoder: Sendable {
    package init() {}

    package func decode(protobuf body: [UInt8]) throws(DecodeError) -> IngestBatch {
        let list: Zipkin_Proto3_ListOfSpans
        do {
            list = try Zipkin_Proto3_ListOfSpans(serializedBytes: body)
        } catch {
            throw DecodeError(.malformed, "body is not a protobuf zipkin.proto3.ListOfSpans")
        }
        var batch = IngestBatch()
        for (index, s) in list.spans.enumerated() {
            let location = "span[\(index)]"
            guard s.traceID.count == 8 || s.traceID.count == 16 else {
                batch.rejected.append(RecordError(location: location, message: "trace_id must be 8 or 16 bytes"))
                continue
            }
            guard s.id.count == 8 else {
                batch.rejected.append(RecordError(location: location, message: "id must be 8 bytes"))
                continue
            }
            guard s.timestamp > 0 else {
                batch.rejected.append(RecordError(location: location, message: "timestamp is missing"))
                continue
            }
            let kind: Span.Kind
            switch s.kind {
            case .client: kind = .client
            case .server: kind = .server
            case .producer: kind = .producer
            case .consumer: kind = .consumer
            default: kind = .unspecified
            }
            let span = Span(
                traceID: TraceID(bytes: s.traceID)!,
                spanID: SpanID(bytes: s.id)!,
                parentID: SpanID(bytes: s.parentID),
                kind: kind,
                name: s.name.lowercased(),
                startMicros: Int64(clamping: s.timestamp),
                durationMicros: Int64(clamping: s.duration),
                localEndpoint: s.hasLocalEndpoint ? Self.endpoint(s.localEndpoint) : nil,
                remoteEndpoint: s.hasRemoteEndpoint ? Self.endpoint(s.remoteEndpoint) : nil,
                annotations: s.annotations.map { Span.Annotation(timestampMicros: Int64(clamping: $0.timestamp), value: $0.value) },
                tags: Attributes(s.tags),
                shared: s.shared,
                debug: s.debug
            )
            batch.spans.append(span)
            if let call = EnvoySpanMapper.request(from: span) { batch.requests.append(call) }
        }
        return batch
    }

    private static func endpoint(_ e: Zipkin_Proto3_Endpoint) -> Span.Endpoint {
        Span.Endpoint(
            serviceName: e.serviceName.isEmpty ? nil : e.serviceName.lowercased(),
            ipv4: e.ipv4.count == 4 ? e.ipv4.map(String.init).joined(separator: ".") : nil,
            ipv6: e.ipv6.count == 16 ? stride(from: 0, to: 16, by: 2).map {
                String(UInt16(e.ipv6[e.ipv6.startIndex + $0]) << 8 | UInt16(e.ipv6[e.ipv6.startIndex + $0 + 1]), radix: 16)
            }.joined(separator: ":") : nil,
            port: e.port == 0 ? nil : Int(e.port))
    }
}
