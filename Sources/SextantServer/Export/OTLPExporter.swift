import AsyncHTTPClient
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import Metrics
import NIOCore
import SextantIngest
import SextantModel
import SextantWire
import ServiceLifecycle
import SwiftProtobuf

/// Where Sextant forwards the spans and log records it stores (flags `--otlp-export-endpoint`,
/// `--otlp-export-protocol`, `--otlp-export-token-file`, `--otlp-export-queue-bytes`).
package struct OTLPExportConfiguration: Sendable {
    package enum WireProtocol: String, Sendable, CaseIterable {
        /// OTLP/HTTP, protobuf bodies, to `<endpoint>/v1/traces` and `<endpoint>/v1/logs`.
        case http
        /// OTLP over gRPC (`TraceService/Export`, `LogsService/Export`).
        case grpc
    }

    /// `http://host:port` or `https://host:port`; nil: nothing is forwarded.
    package var endpoint: String?
    package var wireProtocol = WireProtocol.http
    /// Sent as `Authorization: Bearer`.
    package var bearerToken: String?
    /// Bytes each of the two queues (spans, logs) keeps on disk before it drops its oldest requests.
    package var queueBytes = 256 << 20

    package init() {}
}

/// Forwards every stored span and log record to an OTLP endpoint: Tempo, Jaeger, an OpenTelemetry
/// Collector, another Sextant.
///
/// A batch is queued (`ExportQueue`, in the data directory) once it is committed and before its
/// sender is answered, so what Sextant acknowledged is forwarded even across a restart; a sender
/// per signal sends the queue oldest first, several queued batches to a request (up to 4 MiB: OTLP
/// requests concatenate), with the remote write rules: a 2xx takes them off the queue (records it
/// refuses by partial success are counted as rejected), "not now" (HTTP 429, 502, 503, 504; gRPC
/// UNAVAILABLE, RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED, ABORTED; no connection) is retried with
/// backoff, anything else drops them and says so.
final class OTLPExporter: Service, Sendable {
    let configuration: OTLPExportConfiguration
    let metrics: SelfMetrics
    let logger: Logger
    let traces: ExportQueue
    let logs: ExportQueue
    private let endpoint: String

    /// Requests are made of queued batches up to this many bytes.
    static let requestBytes = 4 << 20

    init(configuration: OTLPExportConfiguration, dataDirectory: String, metrics: SelfMetrics, logger: Logger) throws {
        guard let endpoint = configuration.endpoint else {
            throw OTLPExportError("no --otlp-export-endpoint")
        }
        self.configuration = configuration
        self.metrics = metrics
        self.logger = logger
        self.endpoint = endpoint.hasSuffix("/") ? String(endpoint.dropLast()) : endpoint
        let folder = URL(fileURLWithPath: dataDirectory).appendingPathComponent("otlp-export")
            .appendingPathComponent(RemoteWriteExporter.folderName(endpoint + "#" + configuration.wireProtocol.rawValue))
        traces = try ExportQueue(folder: folder, maxBytes: configuration.queueBytes, fileExtension: "traces")
        logs = try ExportQueue(folder: folder, maxBytes: configuration.queueBytes, fileExtension: "logs")
    }

    /// Queues a committed batch's spans and log records.
    func forward(_ batch: IngestBatch) {
        queue(batch.spans.count, into: traces, signal: "traces") { OTLPExportEncoder.traces(batch.spans) }
        queue(batch.logs.count, into: logs, signal: "logs") { OTLPExportEncoder.logs(batch.logs) }
    }

    private func queue(_ records: Int, into queue: ExportQueue, signal: String, body: () -> [UInt8]) {
        guard records > 0 else { return }
        do {
            let dropped = try queue.append(body: body(), records: records)
            if dropped > 0 { count(signal, .dropped, dropped) }
        } catch {
            count(signal, .dropped, records)
            logger.error("could not queue records for OTLP export; dropped", metadata: ["error": "\(error)"])
        }
    }

    func run() async throws {
        switch configuration.wireProtocol {
        case .http:
            try await withThrowingDiscardingTaskGroup { group in
                group.addTask { await self.send(signal: "traces", queue: self.traces, deliver: self.post(path: "/v1/traces")) }
                group.addTask { await self.send(signal: "logs", queue: self.logs, deliver: self.post(path: "/v1/logs")) }
            }
        case .grpc:
            let transport = try Self.transport(endpoint)
            try await withGRPCClient(transport: transport) { client in
                try await withThrowingDiscardingTaskGroup { group in
                    group.addTask {
                        await self.send(signal: "traces", queue: self.traces, deliver: self.call(client, Self.traceExport))
                    }
                    group.addTask {
                        await self.send(signal: "logs", queue: self.logs, deliver: self.call(client, Self.logsExport))
                    }
                }
            }
        }
    }

    private func send(signal: String, queue: ExportQueue, deliver: @escaping @Sendable ([UInt8]) async -> Delivery) async {
        let endpoint = endpoint
        let logger = logger
        await QueueSender(queue: queue, requestBytes: Self.requestBytes).run(
            body: { segments in segments.count == 1 ? segments[0].body : segments.flatMap(\.body) },
            deliver: deliver,
            count: { outcome, records in self.count(signal, outcome, records) },
            refused: { reason in
                logger.error(
                    "OTLP endpoint refused a request for good; dropped",
                    metadata: ["otlp.endpoint": "\(endpoint)", "otlp.signal": "\(signal)", "reason": "\(reason)"])
            },
            idle: { self.gauges(signal, queue) })
    }

    // MARK: - OTLP/HTTP

    private func post(path: String) -> @Sendable ([UInt8]) async -> Delivery {
        let url = endpoint + path
        let token = configuration.bearerToken
        let logger = logger
        let isTraces = path.hasSuffix("traces")
        return { body in
            do {
                let answer = try await ExportPost.send(
                    body, to: url, headers: [("Content-Type", "application/x-protobuf")], token: token)
                if (200..<300).contains(answer.code) {
                    return .accepted(rejected: Self.rejected(answer.body, traces: isTraces))
                }
                if [429, 502, 503, 504].contains(answer.code) { return .retry(after: answer.retryAfter) }
                return .refused("HTTP \(answer.code): \(String(decoding: answer.body.prefix(200), as: UTF8.self))")
            } catch {
                logger.debug("OTLP export failed", metadata: ["otlp.url": "\(url)", "error": "\(error)"])
                return .retry(after: nil)
            }
        }
    }

    // MARK: - OTLP/gRPC

    static let traceExport = MethodDescriptor(
        fullyQualifiedService: "opentelemetry.proto.collector.trace.v1.TraceService", method: "Export")
    static let logsExport = MethodDescriptor(
        fullyQualifiedService: "opentelemetry.proto.collector.logs.v1.LogsService", method: "Export")

    private func call(
        _ client: GRPCClient<HTTP2ClientTransport.Posix>, _ method: MethodDescriptor
    ) -> @Sendable ([UInt8]) async -> Delivery {
        var metadata: Metadata = [:]
        if let token = configuration.bearerToken { metadata.addString("Bearer \(token)", forKey: "authorization") }
        let logger = logger
        let isTraces = method == Self.traceExport
        return { [metadata] body in
            do {
                let answer = try await client.unary(
                    request: ClientRequest(message: body, metadata: metadata), descriptor: method,
                    serializer: RawMessageSerializer(), deserializer: RawMessageDeserializer(),
                    options: .defaults
                ) { try $0.message }
                return .accepted(rejected: Self.rejected(answer, traces: isTraces))
            } catch let error as RPCError {
                switch error.code {
                case .unavailable, .resourceExhausted, .deadlineExceeded, .aborted, .cancelled:
                    logger.debug("OTLP export failed", metadata: ["otlp.method": "\(method)", "error": "\(error)"])
                    return .retry(after: nil)
                default:
                    return .refused("gRPC \(error.code): \(error.message.prefix(200))")
                }
            } catch {
                return .retry(after: nil)
            }
        }
    }

    /// A client transport for `http://host:port` (plaintext) or `https://host:port` (TLS).
    static func transport(_ endpoint: String) throws -> HTTP2ClientTransport.Posix {
        guard let url = URLComponents(string: endpoint), let host = url.host, !host.isEmpty,
            url.scheme == "http" || url.scheme == "https"
        else {
            throw OTLPExportError("--otlp-export-endpoint '\(endpoint)' must be http://host:port or https://host:port")
        }
        let port = url.port ?? (url.scheme == "https" ? 443 : 4317)
        return try HTTP2ClientTransport.Posix(
            target: .dns(host: host, port: port), transportSecurity: url.scheme == "https" ? .tls : .plaintext)
    }

    /// The records an export response's partial success refused.
    static func rejected(_ response: [UInt8], traces: Bool) -> Int {
        guard !response.isEmpty else { return 0 }
        if traces {
            let answer = try? Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceResponse(serializedBytes: response)
            return Int(answer?.partialSuccess.rejectedSpans ?? 0)
        }
        let answer = try? Opentelemetry_Proto_Collector_Logs_V1_ExportLogsServiceResponse(serializedBytes: response)
        return Int(answer?.partialSuccess.rejectedLogRecords ?? 0)
    }

    // MARK: - Own metrics

    private func count(_ signal: String, _ outcome: QueueSender.Outcome, _ records: Int) {
        metrics.count(
            "sextant_otlp_export_records_total", [("signal", signal), ("outcome", outcome.rawValue)], records)
    }

    private func gauges(_ signal: String, _ queue: ExportQueue) {
        queue.report("sextant_otlp_export_queue", dimensions: [("signal", signal)], to: metrics)
    }
}

struct OTLPExportError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
