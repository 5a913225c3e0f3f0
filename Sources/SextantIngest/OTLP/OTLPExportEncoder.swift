internal import Foundation
package import SextantModel
internal import SextantWire
internal import SwiftProtobuf

/// Spans and log records as OTLP export requests, for forwarding them to a trace backend or
/// another Sextant (`--otlp-export-endpoint`).
///
/// A span's own fields take OTLP's: ids as bytes, times in nanoseconds, Zipkin annotations as
/// events, OTLP's status back into the status (the `otel.status_code`/`otel.status_description`
/// tags `OTLPTraceDecoder` makes from it), Zipkin's `error` tag as that attribute. Spans are grouped into one resource
/// per local service (`service.name`). What OTLP has no field for travels as attributes that
/// `OTLPTraceDecoder` reads back, so that a Sextant receiving the spans stores them as they were:
/// the endpoints' addresses and ports (`zipkin.local_endpoint.ipv4`, `….ipv6`, `….port`), the
/// remote endpoint (`zipkin.remote_endpoint.service_name`, `….ipv4`, `….ipv6`, `….port`) and Zipkin's
/// `shared` and `debug` flags (`zipkin.shared`, `zipkin.debug`).
package enum OTLPExportEncoder {
    /// Attribute keys that carry Zipkin fields OTLP has no place for.
    package enum ZipkinKey {
        package static let prefix = "zipkin."
        package static let localIPv4 = "zipkin.local_endpoint.ipv4"
        package static let localIPv6 = "zipkin.local_endpoint.ipv6"
        package static let localPort = "zipkin.local_endpoint.port"
        package static let remoteService = "zipkin.remote_endpoint.service_name"
        package static let remoteIPv4 = "zipkin.remote_endpoint.ipv4"
        package static let remoteIPv6 = "zipkin.remote_endpoint.ipv6"
        package static let remotePort = "zipkin.remote_endpoint.port"
        package static let shared = "zipkin.shared"
        package static let debug = "zipkin.debug"
    }

    /// An `ExportTraceServiceRequest` of `spans`, serialized.
    package static func traces(_ spans: [Span]) -> [UInt8] {
        var request = Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest()
        request.resourceSpans = byService(spans, service: { $0.localEndpoint?.serviceName ?? "" }).map { service, spans in
            var resourceSpans = Opentelemetry_Proto_Trace_V1_ResourceSpans()
            if !service.isEmpty { resourceSpans.resource.attributes = [keyValue("service.name", service)] }
            var scope = Opentelemetry_Proto_Trace_V1_ScopeSpans()
            scope.scope.name = "sextant"
            scope.spans = spans.map(otlpSpan)
            resourceSpans.scopeSpans = [scope]
            return resourceSpans
        }
        return (try? request.serializedBytes()) ?? []
    }

    /// An `ExportLogsServiceRequest` of `logs`, serialized: one resource per service.
    package static func logs(_ logs: [LogRecord]) -> [UInt8] {
        var request = Opentelemetry_Proto_Collector_Logs_V1_ExportLogsServiceRequest()
        request.resourceLogs = byService(logs, service: \.service).map { service, logs in
            var resourceLogs = Opentelemetry_Proto_Logs_V1_ResourceLogs()
            resourceLogs.resource.attributes = [keyValue("service.name", service)]
            var scope = Opentelemetry_Proto_Logs_V1_ScopeLogs()
            scope.scope.name = "sextant"
            scope.logRecords = logs.map(otlpLogRecord)
            resourceLogs.scopeLogs = [scope]
            return resourceLogs
        }
        return (try? request.serializedBytes()) ?? []
    }

    /// Records grouped by their service, services in the order they first appear.
    private static func byService<T>(_ records: [T], service: (T) -> String) -> [(String, [T])] {
        var order: [String] = []
        var groups: [String: [T]] = [:]
        for record in records {
            let name = service(record)
            if groups[name] == nil { order.append(name) }
            groups[name, default: []].append(record)
        }
        return order.map { ($0, groups[$0]!) }
    }

    private static func otlpLogRecord(_ log: LogRecord) -> Opentelemetry_Proto_Logs_V1_LogRecord {
        var record = Opentelemetry_Proto_Logs_V1_LogRecord()
        record.timeUnixNano = UInt64(max(0, log.timeMicros)) * 1_000
        record.severityNumber = Opentelemetry_Proto_Logs_V1_SeverityNumber(rawValue: log.severityNumber) ?? .unspecified
        record.severityText = log.severityText
        record.body.stringValue = log.body
        record.attributes = log.attributes.sorted { $0.key < $1.key }.map { keyValue($0.key, $0.value) }
        if let id = log.traceID.flatMap(TraceID.init(hex:)) { record.traceID = Data(bytes(id)) }
        if let id = log.spanID.flatMap(SpanID.init(hex:)) { record.spanID = Data(bytes(id.value)) }
        return record
    }

    private static func otlpSpan(_ span: Span) -> Opentelemetry_Proto_Trace_V1_Span {
        var s = Opentelemetry_Proto_Trace_V1_Span()
        s.traceID = Data(bytes(span.traceID))
        s.spanID = Data(bytes(span.spanID.value))
        if let parent = span.parentID { s.parentSpanID = Data(bytes(parent.value)) }
        s.name = span.name
        switch span.kind {
        case .unspecified: s.kind = .unspecified
        case .server: s.kind = .server
        case .client: s.kind = .client
        case .producer: s.kind = .producer
        case .consumer: s.kind = .consumer
        }
        s.startTimeUnixNano = UInt64(max(0, span.startMicros)) * 1_000
        s.endTimeUnixNano = UInt64(max(0, span.startMicros + span.durationMicros)) * 1_000
        var attributes: [Opentelemetry_Proto_Common_V1_KeyValue] = []
        attributes.reserveCapacity(span.tags.count + 4)
        // OTLP's status where the span had one (`otel.status_code`); an error Zipkin marked with its
        // `error` tag travels as that tag, which the receiving decoder reads as an error.
        let hasStatus = span.isError && span.tags["otel.status_code"] == "ERROR"
        var statusMessage = ""
        for i in span.tags.indices {
            let (key, value) = span.tags[i]
            switch key {
            case "otel.status_code" where hasStatus: continue
            case "otel.status_description" where hasStatus: statusMessage = value
            default: attributes.append(keyValue(key, value))
            }
        }
        if let local = span.localEndpoint {
            if let ip = local.ipv4 { attributes.append(keyValue(ZipkinKey.localIPv4, ip)) }
            if let ip = local.ipv6 { attributes.append(keyValue(ZipkinKey.localIPv6, ip)) }
            if let port = local.port { attributes.append(keyValue(ZipkinKey.localPort, String(port))) }
        }
        if let remote = span.remoteEndpoint {
            if let name = remote.serviceName { attributes.append(keyValue(ZipkinKey.remoteService, name)) }
            if let ip = remote.ipv4 { attributes.append(keyValue(ZipkinKey.remoteIPv4, ip)) }
            if let ip = remote.ipv6 { attributes.append(keyValue(ZipkinKey.remoteIPv6, ip)) }
            if let port = remote.port { attributes.append(keyValue(ZipkinKey.remotePort, String(port))) }
        }
        if span.shared { attributes.append(keyValue(ZipkinKey.shared, "true")) }
        if span.debug { attributes.append(keyValue(ZipkinKey.debug, "true")) }
        s.attributes = attributes
        s.events = span.annotations.map { annotation in
            var event = Opentelemetry_Proto_Trace_V1_Span.Event()
            event.timeUnixNano = UInt64(max(0, annotation.timestampMicros)) * 1_000
            event.name = annotation.value
            return event
        }
        if hasStatus {
            s.status.code = .error
            s.status.message = statusMessage
        }
        return s
    }

    private static func keyValue(_ key: String, _ value: String) -> Opentelemetry_Proto_Common_V1_KeyValue {
        var pair = Opentelemetry_Proto_Common_V1_KeyValue()
        pair.key = key
        pair.value.stringValue = value
        return pair
    }

    private static func bytes(_ id: TraceID) -> [UInt8] {
        bytes(id.high) + bytes(id.low)
    }

    private static func bytes(_ word: UInt64) -> [UInt8] {
        withUnsafeBytes(of: word.bigEndian) { Array($0) }
    }
}
