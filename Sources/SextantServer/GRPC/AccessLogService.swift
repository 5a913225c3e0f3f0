import GRPCCore
import GRPCProtobuf
import Logging
import SextantIngest
import SextantModel
import SextantWire

/// `envoy.service.accesslog.v3.AccessLogService/StreamAccessLogs`: Envoy's gRPC access log
/// service. The proxy names itself in the first message of each stream only.
///
/// Registered by hand rather than through the generated `SimpleServiceProtocol` so that the
/// handler gets each message's bytes, whose entries `EnvoyALSDecoder` reads without building
/// SwiftProtobuf messages; the response is the generated message.
struct AccessLogService: RegistrableRPCService {
    typealias Method = Envoy_Service_Accesslog_V3_AccessLogService.Method.StreamAccessLogs

    let sink: IngestSink
    let directory: ProxyDirectory
    /// How many messages of one stream may wait for their commit while it reads on.
    var window = StreamWindow()
    let logger: Logger

    func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        router.registerHandler(
            forMethod: Method.descriptor,
            deserializer: RawMessageDeserializer(),
            serializer: ProtobufSerializer<Method.Output>(),
            handler: { request, context in
                let response = try await streamAccessLogs(request: request.messages, context: context)
                return StreamingServerResponse(single: ServerResponse(message: response, metadata: [:]))
            }
        )
    }

    func streamAccessLogs(request: RPCAsyncSequence<[UInt8], any Error>, context: ServerContext) async throws
        -> Method.Output
    {
        let decoder = EnvoyALSDecoder()
        var proxy: WorkloadIdentity?
        let logger = logger
        do {
            try await window.store(request, sink: sink, channel: "als") { message in
                if let sender = try decoder.streamProxy(protobuf: message) {
                    guard let identity = sender.identity else {
                        throw RPCError(
                            code: .invalidArgument,
                            message: "identifier.node names no proxy (node id '\(sender.nodeID.prefix(120))')")
                    }
                    proxy = identity
                    directory.learn(nodeID: sender.nodeID, identity: identity)
                }
                guard let proxy else {
                    throw RPCError(
                        code: .invalidArgument, message: "the first message of a stream must carry identifier.node")
                }
                return try decoder.decode(protobuf: message, proxy: proxy)
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
        return Method.Output()
    }
}
