import GRPCCore
import GRPCProtobuf
import Logging
import SextantIngest
import SextantModel
import SextantWire

/// `opentelemetry.proto.collector.trace.v1.TraceService/Export` (Envoy's OpenTelemetry tracer,
/// any OpenTelemetry SDK). Rejected spans are reported in `partial_success`.
///
/// Registered by hand rather than through the generated `SimpleServiceProtocol` so that the
/// handler gets the request's bytes, which `OTLPTraceDecoder` reads without building the
/// SwiftProtobuf request message; the response is the generated message.
struct OTLPTraceService: RegistrableRPCService {
    typealias Method = Opentelemetry_Proto_Collector_Trace_V1_TraceService.Method.Export

    let sink: IngestSink
    let logger: Logger

    func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        router.registerHandler(
            forMethod: Method.descriptor,
            deserializer: RawMessageDeserializer(),
            serializer: ProtobufSerializer<Method.Output>(),
            handler: { request, context in
                let single = try await ServerRequest(stream: request)
                let response = try await export(request: single.message, context: context)
                return StreamingServerResponse(single: ServerResponse(message: response, metadata: [:]))
            }
        )
    }

    func export(request: [UInt8], context: ServerContext) async throws -> Method.Output {
        do {
            return try await OTLPIngest.traces(protobuf: request, sink: sink)
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
    /// - Parameter request: an `ExportTraceServiceRequest` in the protobuf binary format.
    static func traces(protobuf request: [UInt8], sink: IngestSink)
        async throws -> Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceResponse
    {
        tracesAnswer(try await sink.store(OTLPTraceDecoder().decode(protobuf: request), channel: "otlp_traces"))
    }

    /// The answer to stored spans: a partial success naming what was rejected, if anything was.
    static func tracesAnswer(_ batch: IngestBatch) -> Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceResponse {
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
