import Foundation
import Hummingbird
import NIOCore
import SextantIngest
import SextantModel
import SextantStore

/// HTTP receivers: Zipkin v2 spans and Envoy JSON access logs.
struct IngestController: Sendable {
    let sink: IngestSink
    let limits: CollectorConfiguration.Server

    /// The HTTP API's ingest routes: access-log lines and remote write.
    func addRoutes(to group: RouterGroup<some RequestContext>) {
        group.post("/api/v1/accesslogs", use: accessLogs)
        group.post("/api/v1/write", use: remoteWrite)
    }

    /// The Zipkin port's ingest route.
    func addZipkinRoutes(to group: RouterGroup<some RequestContext>) {
        group.post("/api/v2/spans", use: zipkinSpans)
    }

    /// `POST /api/v2/spans`: a JSON array of Zipkin v2 spans, optionally gzip. 202 once durable;
    /// 400 naming the bad spans (the good ones are stored).
    func zipkinSpans(_ request: Request, _ context: some RequestContext) async throws -> Response {
        try await sink.counting(channel: "zipkin") {
            let type = request.headers[.contentType]
            let isProtobuf = type.map(Self.mime) == "application/x-protobuf"
            if let type, !isProtobuf, !Self.isJSON(type) {
                throw DecodeError(
                    .unsupportedContentType,
                    "unsupported content-type '\(type)'; send application/json or application/x-protobuf")
            }
            let batch = try await request.withDecodedBody(limits: limits, memory: sink.memory) { body in
                let decoded =
                    isProtobuf ? try ZipkinProtoDecoder().decode(protobuf: body) : try ZipkinV2Decoder().decode(json: body)
                return try await sink.store(decoded, channel: "zipkin")
            }
            guard batch.rejected.isEmpty else {
                let total = batch.spans.count + batch.rejected.count
                throw HTTPError(
                    .badRequest,
                    message: "rejected \(batch.rejected.count) of \(total) spans (the others were stored): "
                        + Self.summary(batch.rejected))
            }
            return Response(status: .accepted)
        }
    }

    /// `POST /api/v1/accesslogs?node=<node id>`: newline-delimited Envoy JSON access-log lines.
    func accessLogs(_ request: Request, _ context: some RequestContext) async throws -> Response {
        try await sink.counting(channel: "accesslog") {
            let query = request.uri.queryParameters
            var proxy: WorkloadIdentity?
            if let nodeText = query["node"].map(String.init) {
                guard let node = NodeIdentity.parsed(nodeID: nodeText) else {
                    throw DecodeError(
                        .malformed,
                        "node '\(nodeText.prefix(120))' is not an Envoy node id (type~ip~pod.namespace~domain)")
                }
                proxy = node.workload
            }
            if var p = proxy {
                if let w = query["workload"] { p.workload = String(w) }
                if let a = query["app"] {
                    p.app = String(a)
                    p.canonicalService = String(a)
                }
                if let v = query["version"] {
                    p.version = String(v)
                    p.canonicalRevision = String(v)
                }
                if let c = query["cluster"] { p.cluster = String(c) }
                proxy = p
            }
            let batch = try await request.withDecodedBody(limits: limits, memory: sink.memory) { body in
                try await sink.store(EnvoyAccessLogDecoder(defaultProxy: proxy).decode(lines: body), channel: "accesslog")
            }
            let answer = AccessLogAnswer(
                accepted: batch.requests.count + batch.connections.count, calls: batch.requests.count,
                connections: batch.connections.count, rejected: batch.rejected.count,
                errors: batch.rejected.prefix(20).map(\.description))
            let status: HTTPResponse.Status = batch.rejected.isEmpty ? .ok : .badRequest
            return try JSONResponse.make(answer, status: status)
        }
    }

    /// `POST /api/v1/write`: Prometheus remote write 1.0 (snappy-compressed protobuf
    /// `WriteRequest`). 204 once durable; 400 for a body that cannot be read or bad series (the
    /// others are stored).
    func remoteWrite(_ request: Request, _ context: some RequestContext) async throws -> Response {
        try await sink.counting(channel: "remote_write") {
            if let type = request.headers[.contentType], Self.mime(type) != "application/x-protobuf" {
                throw DecodeError(.unsupportedContentType, "unsupported content-type '\(type)'; send application/x-protobuf")
            }
            // Remote write bodies are snappy whether or not the sender says so.
            let batch = try await request.withDecodedBody(limits: limits, memory: sink.memory, defaultEncoding: "snappy") {
                try await sink.store(try RemoteWriteDecoder().decode(protobuf: $0), channel: "remote_write")
            }
            guard batch.rejected.isEmpty else {
                throw HTTPError(
                    .badRequest,
                    message: "rejected \(batch.rejected.count) series (the others were stored): " + Self.summary(batch.rejected))
            }
            return Response(status: .noContent)
        }
    }

    private struct AccessLogAnswer: Encodable {
        /// Lines stored: calls and TCP connections.
        var accepted: Int
        var calls: Int
        var connections: Int
        var rejected: Int
        var errors: [String]
    }

    /// The media type of a `Content-Type`, lowercased, without parameters.
    private static func mime(_ contentType: String) -> String {
        let type = contentType.utf8.split(separator: UInt8(ascii: ";"), maxSplits: 1, omittingEmptySubsequences: false)
            .first ?? []
        let trimmed = type.drop { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }
        let end = trimmed.lastIndex { $0 != UInt8(ascii: " ") && $0 != UInt8(ascii: "\t") }
        guard let end else { return "" }
        return String(decoding: trimmed[...end].map { $0 >= 0x41 && $0 <= 0x5A ? $0 | 0x20 : $0 }, as: UTF8.self)
    }

    private static func isJSON(_ contentType: String) -> Bool {
        let mime = mime(contentType)
        return mime == "application/json" || mime == "text/plain" || mime == ""
    }

    private static func summary(_ errors: [RecordError]) -> String {
        IngestSink.firstReasons(errors)
    }
}
