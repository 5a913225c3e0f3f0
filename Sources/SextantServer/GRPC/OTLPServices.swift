import GRPCCore
import Logging
import SextantIngest
import SextantModel
import SextantWire

/// `opentelemetry.proto.collector.trace.v1.TraceService/Export` (Envoy's OpenTelemetry tracer,
/// any OpenTelemetry SDK). Rejected spans are reported in `partial_success`.
struct OTLPTraceService: Opentelemetry_Proto_Collector_Trace_V1_TraceService.SimpleServiceProtocol {
    let sink: IngestSink
    let logger: Logger

    func export(
        request: Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest, context: ServerContext
    ) async throws -> Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceResponse {
        do {
            return try await OTLPIngest.traces(request, sink: sink)
        } catch {
            sink.count(error, channel: "otlp_traces")
            throw GRPCErrorMapping.rpcError(error, logger: logger)
        }
    }
}

/// `opentelemetry.proto.collector.logs.v1.LogsService/Export` (Envoy's OpenTelemetry access
/// logger, any OpenTelemetry SDK).
struct OTLPLogsService: Opentelemetry_Proto_Collector_Logs_V1_LogsService.SimpleServiceProtocol {
    let sink: IngestSink
    let logger: Logger

    func export(
        request: Opentelemetry_Proto_Collector_Logs_V1_ExportLogsServiceRequest, context: ServerContext
    ) async throws -> Opentelemetry_Proto_Collector_Logs_V1_ExportLogsServiceResponse {
        do {
            return try await OTLPIngest.logs(request, sink: sink)
        } catch {
            sink.count(error, channel: "otlp_logs")
            throw GRPCErrorMapping.rpcError(error, logger: logger)
        }
    }
}

/// OTLP ingestion shared by the gRPC and HTTP receivers.
enum OTLPIngest {
    static func traces(_ request: Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest, sink: IngestSink)
        async throws -> Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceResponse
    {
        let batch = try await sink.store(OTLPTraceDecoder().decode(request), channel: "otlp_traces")
        var response = Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceResponse()
        if !batch.rejected.isEmpty {
            response.partialSuccess.rejectedSpans = Int64(batch.rejected.count)
            response.partialSuccess.errorMessage = IngestSink.summary(
                batch.rejected, total: batch.spans.count + batch.rejected.count, noun: "spans")
        }
        return response
    }

    static func logs(_ request: Opentelemetry_Proto_Collector_Logs_V1_ExportLogsServiceRequest, sink: IngestSink)
        async throws -> Opentelemetry_Proto_Collector_Logs_V1_ExportLogsServiceResponse
    {
        let batch = try await sink.store(OTLPLogDecoder().decode(request), channel: "otlp_logs")
        var response = Opentelemetry_Proto_Collector_Logs_V1_ExportLogsServiceResponse()
        if !batch.rejected.isEmpty {
            response.partialSuccess.rejectedLogRecords = Int64(batch.rejected.count)
            response.partialSuccess.errorMessage = IngestSink.summary(
                batch.rejected, total: batch.requests.count + batch.logs.count + batch.rejected.count,
                noun: "log records")
        }
        return response
    }
}
