import GRPCCore
import GRPCNIOTransportHTTP2
import Synchronization

/// Request and response bodies passed through gRPC as they are (the bodies are pre-built).
struct RawBytesSerializer: MessageSerializer {
    func serialize<Bytes: GRPCContiguousBytes>(_ message: [UInt8]) throws -> Bytes { Bytes(message) }
}

struct RawBytesDeserializer: MessageDeserializer {
    func deserialize<Bytes: GRPCContiguousBytes>(_ serializedMessageBytes: Bytes) throws -> [UInt8] {
        serializedMessageBytes.withUnsafeBytes { Array($0) }
    }
}

enum GRPCMethods {
    static let otlpExport = MethodDescriptor(
        fullyQualifiedService: "opentelemetry.proto.collector.trace.v1.TraceService", method: "Export")
    static let alsStream = MethodDescriptor(
        fullyQualifiedService: "envoy.service.accesslog.v3.AccessLogService", method: "StreamAccessLogs")
}

/// One gRPC client (one HTTP/2 connection) to 127.0.0.1, running while `body` runs.
///
/// A body that returns before the client has started its connections (a connection of a step
/// with fewer requests than connections sends nothing) is not an error: grpc-swift then reports
/// `clientIsStopped`, which is ignored once the body is done.
func withGRPCConnection(
    port: Int, _ body: @Sendable (GRPCClient<HTTP2ClientTransport.Posix>) async throws -> Void
) async throws {
    let transport = try HTTP2ClientTransport.Posix(
        target: .ipv4(address: "127.0.0.1", port: port), transportSecurity: .plaintext)
    let done = Atomic(false)
    do {
        try await withGRPCClient(transport: transport) { client in
            try await body(client)
            done.store(true, ordering: .relaxed)
        }
    } catch let error as RuntimeError where error.code == .clientIsStopped && done.load(ordering: .relaxed) {
        return
    }
}
