import Foundation
import GRPCCore
import Logging
import SextantIngest
import SextantModel
import SextantWire

/// `envoy.service.metrics.v3.MetricsService/StreamMetrics`: Envoy's metrics service sink. The
/// proxy names itself in the first message of each stream only.
struct EnvoyMetricsService: Envoy_Service_Metrics_V3_MetricsService.SimpleServiceProtocol {
    let sink: IngestSink
    let directory: ProxyDirectory
    /// How many messages of one stream may wait for their commit while it reads on.
    var window = StreamWindow()
    let logger: Logger

    func streamMetrics(
        request: RPCAsyncSequence<Envoy_Service_Metrics_V3_StreamMetricsMessage, any Error>, context: ServerContext
    ) async throws -> Envoy_Service_Metrics_V3_StreamMetricsResponse {
        let decoder = EnvoyMetricsServiceDecoder()
        var labels: [MetricLabelPair]?
        do {
            // Rejected points are counted; failing the stream would only make Envoy resend them.
            try await window.store(request, sink: sink, channel: "metrics_service") { message in
                if message.hasIdentifier {
                    let node = message.identifier.node
                    guard let identity = node.workloadIdentity else {
                        throw RPCError(code: .invalidArgument, message: "identifier.node names no proxy (node id '\(node.id.prefix(120))')")
                    }
                    let parsed = NodeIdentity.parsed(nodeID: node.id)
                    directory.learn(nodeID: node.id, identity: identity)
                    labels = MetricNames.proxyLabels(identity, pod: parsed?.pod)
                }
                guard let labels else {
                    throw RPCError(code: .invalidArgument, message: "the first message of a stream must carry identifier.node")
                }
                return decoder.decode(message, proxyLabels: labels, nowMs: sink.clock.nowMillis)
            }
        } catch {
            sink.count(error, channel: "metrics_service")
            throw GRPCErrorMapping.rpcError(error, logger: logger)
        }
        return Envoy_Service_Metrics_V3_StreamMetricsResponse()
    }
}

/// `opentelemetry.proto.collector.metrics.v1.MetricsService/Export`.
struct OTLPMetricsService: Opentelemetry_Proto_Collector_Metrics_V1_MetricsService.SimpleServiceProtocol {
    let sink: IngestSink
    let logger: Logger

    func export(
        request: Opentelemetry_Proto_Collector_Metrics_V1_ExportMetricsServiceRequest, context: ServerContext
    ) async throws -> Opentelemetry_Proto_Collector_Metrics_V1_ExportMetricsServiceResponse {
        do {
            return try await OTLPIngest.metrics(request, sink: sink)
        } catch {
            sink.count(error, channel: "otlp_metrics")
            throw GRPCErrorMapping.rpcError(error, logger: logger)
        }
    }
}

extension OTLPIngest {
    static func metrics(_ request: Opentelemetry_Proto_Collector_Metrics_V1_ExportMetricsServiceRequest, sink: IngestSink)
        async throws -> Opentelemetry_Proto_Collector_Metrics_V1_ExportMetricsServiceResponse
    {
        let batch = try await sink.store(OTLPMetricsDecoder().decode(request, nowMs: sink.clock.nowMillis), channel: "otlp_metrics")
        var response = Opentelemetry_Proto_Collector_Metrics_V1_ExportMetricsServiceResponse()
        if !batch.rejected.isEmpty {
            response.partialSuccess.rejectedDataPoints = Int64(batch.rejected.count)
            response.partialSuccess.errorMessage = IngestSink.summary(
                batch.rejected, total: batch.metrics.count + batch.rejected.count, noun: "metrics")
        }
        return response
    }
}
