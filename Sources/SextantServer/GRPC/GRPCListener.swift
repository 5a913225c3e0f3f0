import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import ServiceLifecycle

/// The gRPC listener (HTTP/2, cleartext or TLS) as a service: serves until graceful shutdown, then lets
/// open streams finish.
struct GRPCListener: Service {
    let server: GRPCServer<HTTP2ServerTransport.Posix>
    let transport: HTTP2ServerTransport.Posix
    let onListening: @Sendable (String) -> Void

    init(
        host: String, port: Int, maxMessageBytes: Int, tls: ServerTLS?, services: [any RegistrableRPCService],
        interceptors: [any ServerInterceptor], onListening: @escaping @Sendable (String) -> Void
    ) {
        transport = HTTP2ServerTransport.Posix(
            address: .ipv4(host: host, port: port),
            transportSecurity: tls?.grpcSecurity ?? .plaintext,
            config: .defaults { config in
                config.rpc.maxRequestPayloadSize = maxMessageBytes
                config.compression.enabledAlgorithms = .all
            })
        server = GRPCServer(transport: transport, services: services, interceptors: interceptors)
        self.onListening = onListening
    }

    func run() async throws {
        try await withGracefulShutdownHandler {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await server.serve() }
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
