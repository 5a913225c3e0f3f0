import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle

/// The gRPC listener (HTTP/2, cleartext or TLS) as a service: serves until graceful shutdown, then lets
/// open streams finish.
struct GRPCListener: Service {
    let server: GRPCServer<HTTP2ServerTransport.Posix>
    let transport: HTTP2ServerTransport.Posix
    let onListening: @Sendable (String) -> Void

    /// - Parameter host: what `--listen` names, as the HTTP listeners take it: an IPv4 or IPv6
    ///   address (`0.0.0.0`, `::`, `::1`) or a host name, bound at its first address.
    init(
        host: String, port: Int, maxMessageBytes: Int, tls: ServerTLS?, services: [any RegistrableRPCService],
        interceptors: [any ServerInterceptor], fastPath: GRPCFastPath.Settings? = nil,
        onListening: @escaping @Sendable (String) -> Void
    ) throws {
        transport = HTTP2ServerTransport.Posix(
            address: try Self.address(host: host, port: port),
            transportSecurity: tls?.grpcSecurity ?? .plaintext,
            config: .defaults { config in
                config.rpc.maxRequestPayloadSize = maxMessageBytes
                config.http2.targetWindowSize = Self.windowBytes
                config.compression.enabledAlgorithms = .all
                if let fastPath {
                    // Each stream's pipeline, before grpc-swift's handler (`GRPCFastPath`).
                    config.channelDebuggingCallbacks.onAcceptHTTP2Stream = { stream in
                        stream.eventLoop.makeCompletedFuture {
                            try stream.pipeline.syncOperations.addHandler(
                                GRPCFastPath(settings: fastPath), position: .first)
                        }
                    }
                }
            })
        server = GRPCServer(transport: transport, services: services, interceptors: interceptors)
        self.onListening = onListening
    }

    /// The flow-control window of each stream and connection, and its initial size. HTTP/2's
    /// default, 64 KiB, is less than one OTLP export or a few ALS messages: a proxy sends a window,
    /// waits a round trip for the update, and sends the rest. A mebibyte carries a whole request
    /// and bounds what one connection can leave unread to as much.
    static let windowBytes = 1 << 20

    /// The address to bind, of the family the host resolves to (a literal stays as it is).
    static func address(host: String, port: Int) throws -> GRPCNIOTransportCore.SocketAddress {
        let resolved = try NIOCore.SocketAddress.makeAddressResolvingHost(host, port: port)
        switch resolved {
        case .v6:
            return .ipv6(host: resolved.ipAddress ?? host, port: port)
        default:
            return .ipv4(host: resolved.ipAddress ?? host, port: port)
        }
    }

    func run() async throws {
        try await withGracefulShutdownHandler {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    try await withTaskExecutorPreference(EventLoopTaskExecutor(MultiThreadedEventLoopGroup.singleton)) {
                        try await server.serve()
                    }
                }
                group.addTask {
                    let address = try await transport.listeningAddress
                    onListening("\(address)")
                }
                try await group.waitForAll()
            }
        } onGracefulShutdown: {
            server.beginGracefulShutdown()
        }
    }
}
