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
            let isProtobuf = try Self.zipkinIsProtobuf(contentType: request.headers[.contentType])
            let batch = try await request.withDecodedBody(limits: limits, memory: sink.memory) { body in
                try await sink.store(try Self.decodeZipkin(body, isProtobuf: isProtobuf), channel: "zipkin")
            }
            guard batch.rejected.isEmpty else { throw Self.zipkinRejection(batch) }
            return Response(status: .accepted)
        }
    }

    /// Whether a `POST /api/v2/spans` body is protobuf (else JSON), by its `Content-Type`; checked
    /// before the body is read.
    /// - Throws: `DecodeError` for a content type that is neither.
    static func zipkinIsProtobuf(contentType type: String?) throws -> Bool {
        let isProtobuf = type.map(Self.mime) == "application/x-protobuf"
        if let type, !isProtobuf, !Self.isJSON(type) {
            throw DecodeError(
                .unsupportedContentType,
                "unsupported content-type '\(type)'; send application/json or application/x-protobuf")
        }
        return isProtobuf
    }

    /// The spans of a `POST /api/v2/spans` body.
    /// - Throws: `DecodeError` for a body that is not spans.
    static func decodeZipkin(_ body: [UInt8], isProtobuf: Bool) throws -> IngestBatch {
        isProtobuf ? try ZipkinProtoDecoder().decode(protobuf: body) : try ZipkinV2Decoder().decode(json: body)
    }

    /// The 400 naming a Zipkin batch's rejected spans.
    static func zipkinRejection(_ batch: IngestBatch) -> HTTPError {
        let total = batch.spans.count + batch.rejected.count
        return HTTPError(
            .badRequest,
            message: "rejected \(batch.rejected.count) of \(total) spans (the others were stored): "
                + Self.summary(batch.rejected))
    }

    /// `POST /api/v1/accesslogs?node=<node id>`: newline-delimited Envoy JSON access-log lines.
    func accessLogs(_ request: Request, _ context: some RequestContext) async throws -> Response {
        try await sink.counting(channel: "accesslog") {
            let query = request.uri.queryParameters
            let proxy = try Self.accessLogProxy { query[$0[...]] }
            let batch = try await request.withDecodedBody(limits: limits, memory: sink.memory) { body in
                try await sink.store(EnvoyAccessLogDecoder(defaultProxy: proxy).decode(lines: body), channel: "accesslog")
            }
            let (status, body) = try Self.accessLogAnswer(batch)
            return Response(status: status, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: body))
        }
    }

    /// The proxy that sent access-log lines, from the query: its Envoy node id (`node`) and what
    /// overrides the workload the id names (`workload`, `app`, `version`, `cluster`); nil without `node`.
    /// - Throws: `DecodeError` for a `node` that is not an Envoy node id.
    static func accessLogProxy(_ query: (String) -> Substring?) throws -> WorkloadIdentity? {
        guard let nodeText = query("node").map(String.init) else { return nil }
        guard let node = NodeIdentity.parsed(nodeID: nodeText) else {
            throw DecodeError(
                .malformed,
                "node '\(nodeText.prefix(120))' is not an Envoy node id (type~ip~pod.namespace~domain)")
        }
        var proxy = node.workload
        if let w = query("workload") { proxy.workload = String(w) }
        if let a = query("app") {
            proxy.app = String(a)
            proxy.canonicalService = String(a)
        }
        if let v = query("version") {
            proxy.version = String(v)
            proxy.canonicalRevision = String(v)
        }
        if let c = query("cluster") { proxy.cluster = String(c) }
        return proxy
    }

    /// What an access-log upload is answered: 200 when every line was stored, else 400 with the
    /// first reasons; the JSON text of `AccessLogAnswer`, keys sorted.
    static func accessLogAnswer(_ batch: IngestBatch) throws -> (HTTPResponse.Status, ByteBuffer) {
        let answer = AccessLogAnswer(
            accepted: batch.requests.count + batch.connections.count, calls: batch.requests.count,
            connections: batch.connections.count, rejected: batch.rejected.count,
            errors: batch.rejected.prefix(20).map(\.description))
        return (batch.rejected.isEmpty ? .ok : .badRequest, try answer.json)
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

    struct AccessLogAnswer: Encodable {
        /// Lines stored: calls and TCP connections.
        var accepted: Int
        var calls: Int
        var connections: Int
        var rejected: Int
        var errors: [String]

        /// The answer as `JSONResponse` writes it. Without errors, the answer of nearly every
        /// upload, its text is only numbers and is written directly: a `JSONEncoder` a request
        /// took 2.6 % of the server's time at 100,000 lines/s.
        var json: ByteBuffer {
            get throws {
                guard errors.isEmpty else { return try JSONResponse.body(self) }
                return ByteBuffer(
                    string: #"{"accepted":\#(accepted),"calls":\#(calls),"connections":\#(connections),"#
                        + #""errors":[],"rejected":\#(rejected)}"#)
            }
        }
    }

    /// The media type of a `Content-Type`, lowercased, without parameters.
    static func mime(_ contentType: String) -> String {
        let type = contentType.utf8.split(separator: UInt8(ascii: ";"), maxSplits: 1, omittingEmptySubsequences: false)
            .first ?? []
        let trimmed = type.drop { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }
        let end = trimmed.lastIndex { $0 != UInt8(ascii: " ") && $0 != UInt8(ascii: "\t") }
        guard let end else { return "" }
        return String(decoding: trimmed[...end].map { $0 >= 0x41 && $0 <= 0x5A ? $0 | 0x20 : $0 }, as: UTF8.self)
    }

    static func isJSON(_ contentType: String) -> Bool {
        let mime = mime(contentType)
        return mime == "application/json" || mime == "text/plain" || mime == ""
    }

    private static func summary(_ errors: [RecordError]) -> String {
        IngestSink.firstReasons(errors)
    }
}
