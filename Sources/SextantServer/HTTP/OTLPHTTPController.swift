import Foundation
import Hummingbird
import NIOCore
import SextantIngest
import SextantModel
import SwiftProtobuf
import SextantWire

/// OTLP/HTTP: `POST /v1/traces` and `POST /v1/logs`, binary protobuf or JSON, optionally gzip.
/// The answer uses the request's encoding; rejected records are reported in `partial_success`.
/// Spec: https://opentelemetry.io/docs/specs/otlp/#otlphttp
struct OTLPHTTPController: Sendable {
    let sink: IngestSink
    let limits: CollectorConfiguration.Server

    func addRoutes(to group: RouterGroup<some RequestContext>) {
        group.post("/v1/traces", use: traces)
        group.post("/v1/logs", use: logs)
        group.post("/v1/metrics", use: metrics)
    }

    private enum Encoding {
        case protobuf
        case json

        var contentType: String { self == .protobuf ? "application/x-protobuf" : "application/json" }
    }

    func traces(_ request: Request, _ context: some RequestContext) async throws -> Response {
        try await handle(request, channel: "otlp_traces") { bytes, encoding in
            guard encoding == .json else { return try await OTLPIngest.traces(protobuf: bytes, sink: sink) }
            // OTLP/JSON goes through the generated message, then through the same decoder as protobuf.
            let message: Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest = try Self.decode(bytes, encoding)
            return try await OTLPIngest.traces(protobuf: try message.serializedBytes(), sink: sink)
        }
    }

    func logs(_ request: Request, _ context: some RequestContext) async throws -> Response {
        try await handle(request, channel: "otlp_logs") { bytes, encoding in
            let message: Opentelemetry_Proto_Collector_Logs_V1_ExportLogsServiceRequest = try Self.decode(bytes, encoding)
            return try await OTLPIngest.logs(message, sink: sink)
        }
    }

    func metrics(_ request: Request, _ context: some RequestContext) async throws -> Response {
        try await handle(request, channel: "otlp_metrics") { bytes, encoding in
            let message: Opentelemetry_Proto_Collector_Metrics_V1_ExportMetricsServiceRequest = try Self.decode(bytes, encoding)
            return try await OTLPIngest.metrics(message, sink: sink)
        }
    }

    private func handle<Answer: SwiftProtobuf.Message>(
        _ request: Request, channel: String, _ body: ([UInt8], Encoding) async throws -> Answer
    ) async throws -> Response {
        try await sink.counting(channel: channel) {
            let mime = request.headers[.contentType]?.split(separator: ";").first?
                .trimmingCharacters(in: .whitespaces).lowercased()
            let encoding: Encoding
            switch mime {
            case "application/x-protobuf", "application/protobuf": encoding = .protobuf
            case "application/json": encoding = .json
            default:
                throw DecodeError(
                    .unsupportedContentType,
                    "unsupported content-type '\(mime ?? "")'; send application/x-protobuf or application/json")
            }
            let answer = try await request.withDecodedBody(limits: limits, memory: sink.memory) {
                try await body($0, encoding)
            }
            let bytes: [UInt8] =
                encoding == .protobuf ? try answer.serializedBytes() : Array(try answer.jsonUTF8Data())
            return Response(
                status: .ok, headers: [.contentType: encoding.contentType],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
        }
    }

    private static func decode<M: SwiftProtobuf.Message>(_ bytes: [UInt8], _ encoding: Encoding) throws(DecodeError) -> M {
        switch encoding {
        case .protobuf:
            do {
                return try M(serializedBytes: bytes)
            } catch {
                throw DecodeError(.malformed, "body is not a protobuf \(M.protoMessageName)")
            }
        case .json:
            let json = try OTLPJSON.protobufJSON(from: bytes)
            var options = JSONDecodingOptions()
            options.ignoreUnknownFields = true
            do {
                return try M(jsonUTF8Bytes: json, options: options)
            } catch {
                throw DecodeError(.malformed, "body is not OTLP/JSON \(M.protoMessageName): \(error)")
            }
        }
    }
}
