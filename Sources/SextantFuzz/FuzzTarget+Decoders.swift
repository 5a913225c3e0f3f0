internal import Foundation
internal import NIOCore
internal import SextantIngest
internal import SextantModel
internal import SextantWire
internal import SwiftProtobuf

// Each target makes the calls its receiver makes (Sources/SextantServer/HTTP and GRPC) on a body
// that has already passed the size limits; `body-decompressor` covers the content-encoding step.
extension FuzzTarget {
    /// Every target, one per decoder (and one per wire form of a decoder).
    package static let all: [FuzzTarget] = [
        FuzzTarget("zipkin-json", "Zipkin v2 JSON, POST /api/v2/spans") { input throws(DecodeError) in
            Outcome(try ZipkinV2Decoder().decode(json: input))
        },
        FuzzTarget("zipkin-proto", "Zipkin v2 protobuf ListOfSpans, POST /api/v2/spans", protobuf: true) {
            input throws(DecodeError) in
            Outcome(try ZipkinProtoDecoder().decode(protobuf: input))
        },
        FuzzTarget("envoy-als", "Envoy ALS v3 StreamAccessLogsMessage, gRPC StreamAccessLogs", protobuf: true) {
            input throws(DecodeError) in
            let decoder = EnvoyALSDecoder()
            var proxy = streamProxy
            if let identifier = try decoder.identifier(protobuf: input) {
                guard let identity = identifier.node.workloadIdentity else {
                    throw DecodeError(.malformed, "identifier.node names no proxy")
                }
                proxy = identity
            }
            return Outcome(try decoder.decode(protobuf: input, proxy: proxy))
        },
        FuzzTarget("envoy-access-log", "Envoy JSON access-log lines, POST /api/v1/accesslogs") { input in
            Outcome(EnvoyAccessLogDecoder(defaultProxy: streamProxy).decode(lines: input))
        },
        FuzzTarget("otlp-traces", "OTLP ExportTraceServiceRequest protobuf, gRPC and POST /v1/traces", protobuf: true) {
            input throws(DecodeError) in
            Outcome(try OTLPTraceDecoder().decode(protobuf: input))
        },
        FuzzTarget("otlp-logs", "OTLP ExportLogsServiceRequest protobuf, gRPC and POST /v1/logs", protobuf: true) {
            input throws(DecodeError) in
            Outcome(OTLPLogDecoder().decode(try protobuf(input)))
        },
        FuzzTarget(
            "otlp-metrics", "OTLP ExportMetricsServiceRequest protobuf, gRPC and POST /v1/metrics", protobuf: true
        ) {
            input throws(DecodeError) in
            Outcome(OTLPMetricsDecoder().decode(try protobuf(input), nowMs: now))
        },
        FuzzTarget("otlp-json", "OTLP/JSON traces, logs and metrics, POST /v1/* as application/json") {
            input throws(DecodeError) in
            // One body read as each of the three requests, as each route would read it.
            let json = try OTLPJSON.protobufJSON(from: input)
            var batch = IngestBatch()
            if let traces: Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest = try? otlpJSON(json) {
                // As the HTTP route does: the message's protobuf bytes through the wire decoder.
                if let bytes: [UInt8] = try? traces.serializedBytes() {
                    batch.append(contentsOf: try OTLPTraceDecoder().decode(protobuf: bytes))
                }
            }
            if let logs: Opentelemetry_Proto_Collector_Logs_V1_ExportLogsServiceRequest = try? otlpJSON(json) {
                batch.append(contentsOf: OTLPLogDecoder().decode(logs))
            }
            let metrics: Opentelemetry_Proto_Collector_Metrics_V1_ExportMetricsServiceRequest? = try? otlpJSON(json)
            if let metrics {
                batch.append(contentsOf: OTLPMetricsDecoder().decode(metrics, nowMs: now))
            }
            return Outcome(batch)
        },
        FuzzTarget("statsd", "statsd datagrams, UDP") { input in
            let sender = [MetricLabelPair("instance", "10.0.0.7")]
            return Outcome(StatsdDecoder().decode(datagram: input, sender: sender, timestampMs: now))
        },
        FuzzTarget("remote-write", "Prometheus remote write WriteRequest protobuf, after snappy", protobuf: true) {
            input throws(DecodeError) in
            Outcome(try RemoteWriteDecoder().decode(protobuf: input))
        },
        FuzzTarget("remote-write-snappy", "Prometheus remote write body as sent, POST /api/v1/write") {
            input throws(DecodeError) in
            let body = try BodyDecompressor.decode(ByteBuffer(bytes: input), contentEncoding: "snappy", limit: limit)
            return Outcome(try RemoteWriteDecoder().decode(protobuf: Array(buffer: body)))
        },
        FuzzTarget("prometheus-text", "Prometheus text exposition 0.0.4, --scrape") { input in
            let text = String(decoding: input, as: UTF8.self)
            let target = [MetricLabelPair("instance", "10.0.0.7:15090")]
            return Outcome(PrometheusTextDecoder().decode(text, extraLabels: target, nowMs: now))
        },
        FuzzTarget("envoy-metrics-service", "Envoy StreamMetricsMessage, gRPC StreamMetrics", protobuf: true) {
            input throws(DecodeError) in
            let message: Envoy_Service_Metrics_V3_StreamMetricsMessage = try protobuf(input)
            var labels = MetricNames.proxyLabels(streamProxy, pod: "reviews-v2-7d8f9c6b4d-x2k9p")
            if message.hasIdentifier {
                let node = message.identifier.node
                guard let identity = node.workloadIdentity else {
                    throw DecodeError(.malformed, "identifier.node names no proxy")
                }
                labels = MetricNames.proxyLabels(identity, pod: NodeIdentity(nodeID: node.id)?.pod)
            }
            return Outcome(EnvoyMetricsServiceDecoder().decode(message, proxyLabels: labels, nowMs: now))
        },
        FuzzTarget("body-decompressor", "Content-Encoding of every HTTP receiver; the first byte picks the encoding") {
            input throws(DecodeError) in
            guard let selector = input.first else { return .inflated(bytes: 0) }
            let encoding = contentEncodings[Int(selector) % contentEncodings.count]
            let body = try BodyDecompressor.decode(
                ByteBuffer(bytes: input.dropFirst()), contentEncoding: encoding, limit: limit)
            return .inflated(bytes: body.readableBytes)
        },
    ]

    /// The proxy named by an earlier message of the stream (or by `?node=` for access logs).
    private static let streamProxy = NodeIdentity(
        nodeID: "sidecar~10.0.0.7~reviews-v2-7d8f9c6b4d-x2k9p.default~default.svc.cluster.local")!.workload

    /// A fixed clock, so that a replayed input decodes the same way every time.
    private static let now: Int64 = 1_795_706_850_714

    /// The decompressed-size limit; smaller than the server's default so that runs stay fast.
    private static let limit = 1 << 20

    /// `nil` is a request without `Content-Encoding`.
    private static let contentEncodings: [String?] = [nil, "gzip", "deflate", "snappy", "x-gzip", " Identity ", "br"]

    private static func protobuf<M: SwiftProtobuf.Message>(_ input: [UInt8]) throws(DecodeError) -> M {
        do {
            return try M(serializedBytes: input)
        } catch {
            throw DecodeError(.malformed, "not a protobuf \(M.protoMessageName)")
        }
    }

    private static func otlpJSON<M: SwiftProtobuf.Message>(_ json: [UInt8]) throws -> M {
        var options = JSONDecodingOptions()
        options.ignoreUnknownFields = true
        return try M(jsonUTF8Bytes: json, options: options)
    }
}

extension FuzzTarget.Outcome {
    init(_ batch: IngestBatch) {
        self = .decoded(records: batch.recordCount, rejected: batch.rejected.count)
    }
}
