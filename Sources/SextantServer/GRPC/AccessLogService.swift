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
        var stream = ALSStream(directory: directory)
        let logger = logger
        do {
            try await window.store(request, sink: sink, channel: ALSStream.channel) { message in
                try stream.decode(message)
            } stored: { batch in
                ALSStream.stored(batch, logger: logger)
            }
        } catch {
            sink.count(error, channel: ALSStream.channel)
            throw GRPCErrorMapping.rpcError(error, logger: logger)
        }
        return Method.Output()
    }
}

/// What one ALS stream knows as it is read, whichever way it is served (`AccessLogService`,
/// `GRPCFastPath`): the proxy its first message names.
struct ALSStream {
    static let channel = "als"

    let directory: ProxyDirectory
    private let decoder = EnvoyALSDecoder()
    private var proxy: WorkloadIdentity?

    init(directory: ProxyDirectory) {
        self.directory = directory
    }

    /// One message's entries, as the proxy that the stream's first message named reported them.
    /// - Throws: `RPCError` (INVALID_ARGUMENT) when the stream names no proxy; `DecodeError`.
    mutating func decode(_ message: [UInt8]) throws -> IngestBatch {
        if let sender = try decoder.streamProxy(protobuf: message) {
            guard let identity = sender.identity else {
                throw RPCError(
                    code: .invalidArgument, message: "identifier.node names no proxy (node id '\(sender.nodeID.prefix(120))')")
            }
            proxy = identity
            directory.learn(nodeID: sender.nodeID, identity: identity)
        }
        guard let proxy else {
            throw RPCError(code: .invalidArgument, message: "the first message of a stream must carry identifier.node")
        }
        return try decoder.decode(protobuf: message, proxy: proxy)
    }

    /// Told each batch of the stream once committed.
    static func stored(_ batch: IngestBatch, logger: Logger) {
        if !batch.rejected.isEmpty {
            logger.debug(
                "ALS entries rejected",
                metadata: ["ingest.rejected": "\(batch.rejected.count)", "ingest.first": "\(batch.rejected[0])"])
        }
    }
}
