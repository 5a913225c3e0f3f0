import GRPCCore
import Logging
import SextantIngest
import SextantModel
import SextantWire

/// `envoy.service.accesslog.v3.AccessLogService/StreamAccessLogs`: Envoy's gRPC access log
/// service. The proxy names itself in the first message of each stream only.
struct AccessLogService: Envoy_Service_Accesslog_V3_AccessLogService.SimpleServiceProtocol {
    let sink: IngestSink
    let directory: ProxyDirectory
    /// How many messages of one stream may wait for their commit while it reads on.
    var window = StreamWindow()
    let logger: Logger

    func streamAccessLogs(
        request: RPCAsyncSequence<Envoy_Service_Accesslog_V3_StreamAccessLogsMessage, any Error>,
        context: ServerContext
    ) async throws -> Envoy_Service_Accesslog_V3_StreamAccessLogsResponse {
        let decoder = EnvoyALSDecoder()
        var proxy: WorkloadIdentity?
        let logger = logger
        do {
            try await window.store(request, sink: sink, channel: "als") { message in
                if message.hasIdentifier {
                    guard let identity = message.identifier.node.workloadIdentity else {
                        throw RPCError(
                            code: .invalidArgument,
                            message: "identifier.node names no proxy (node id '\(message.identifier.node.id.prefix(120))')")
                    }
                    proxy = identity
                    directory.learn(nodeID: message.identifier.node.id, identity: identity)
                }
                guard let proxy else {
                    throw RPCError(
                        code: .invalidArgument, message: "the first message of a stream must carry identifier.node")
                }
                return decoder.decode(message, proxy: proxy)
            } stored: { batch in
                if !batch.rejected.isEmpty {
                    logger.debug(
                        "ALS entries rejected",
                        metadata: ["ingest.rejected": "\(batch.rejected.count)", "ingest.first": "\(batch.rejected[0])"])
                }
            }
        } catch {
            sink.count(error, channel: "als")
            throw GRPCErrorMapping.rpcError(error, logger: logger)
        }
        return Envoy_Service_Accesslog_V3_StreamAccessLogsResponse()
    }
}
