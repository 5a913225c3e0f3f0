import Testing

@testable import SextantServer

/// Runs the listener `make` builds until `body` returns; `body` gets the address it bound, or nil
/// when it could not bind.
func withGRPCListener<T: Sendable>(
    _ make: (_ onListening: @escaping @Sendable (String) -> Void) throws -> GRPCListener,
    _ body: (_ address: String?) async throws -> T
) async throws -> T {
    let (addresses, continuation) = AsyncStream.makeStream(of: String.self)
    let listener = try make { continuation.yield($0) }
    return try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask {
            // A listener that cannot bind ends the wait for its address.
            defer { continuation.finish() }
            try await listener.run()
        }
        var bound: String?
        for await address in addresses {
            bound = address
            break
        }
        let result = try await body(bound)
        group.cancelAll()
        return result
    }
}

/// The gRPC listener binds what `--listen` names, as the HTTP listeners do: IPv4 and IPv6
/// addresses and host names.
@Suite struct GRPCListenerTests {
    @Test(arguments: [("::1", ["::1"]), ("127.0.0.1", ["127.0.0.1"]), ("localhost", ["127.0.0.1", "::1"])])
    func bindsWhatListenNames(host: String, expected: [String]) async throws {
        let bound = try await withGRPCListener({ onListening in
            try GRPCListener(
                host: host, port: 0, maxMessageBytes: 1 << 20, tls: nil, services: [], interceptors: [],
                onListening: onListening)
        }) { $0 }
        #expect(expected.contains { bound?.contains($0) == true }, "bound \(bound ?? "nothing") for \(host)")
    }

    @Test func aNameThatDoesNotResolveIsAnError() {
        #expect(throws: (any Error).self) {
            try GRPCListener.address(host: "no-such-host.invalid", port: 0)
        }
    }
}
