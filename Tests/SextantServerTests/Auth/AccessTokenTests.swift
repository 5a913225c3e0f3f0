import Foundation
import GRPCCore
import Hummingbird
import HummingbirdTesting
import NIOCore
import SextantFixtures
@testable import SextantServer
import SextantWire
import Testing

@Suite struct AccessTokenTests {
    private func withTokens(_ body: (Collector) async throws -> Void) async throws {
        try await withCollector(configure: { $0.tokens = AccessTokens(ingest: "in-secret", query: "read-secret") }, body)
    }

    @Test func separatesIngestAndQueryTokensOnTheAPI() async throws {
        try await withTokens { collector in
            try await Application(router: collector.apiRouter).test(.router) { client in
                let logs = ByteBuffer(bytes: try Fixtures.bytes("envoy/access-log/details-v1.jsonl"))
                try await client.execute(uri: try accessLogURI("details-v1"), method: .post, body: logs) { response in
                    #expect(response.status == .unauthorized)
                    #expect(response.headers[.wwwAuthenticate]?.hasPrefix("Bearer") == true)
                }
                try await client.execute(
                    uri: try accessLogURI("details-v1"), method: .post, headers: [.authorization: "Bearer read-secret"],
                    body: logs
                ) { #expect($0.status == .unauthorized) }
                try await client.execute(
                    uri: try accessLogURI("details-v1"), method: .post, headers: [.authorization: "Bearer in-secret"],
                    body: logs
                ) { #expect($0.status == .ok) }
                try await client.execute(uri: "/metrics", method: .get) { #expect($0.status == .unauthorized) }
                try await client.execute(uri: "/api/v1/graph", method: .get, headers: [.authorization: "Bearer in-secret"]) {
                    #expect($0.status == .unauthorized)
                }
                try await client.execute(uri: "/api/v1/graph", method: .get, headers: [.authorization: "bearer read-secret"]) {
                    #expect($0.status == .ok)
                }
                try await client.execute(uri: "/healthz", method: .get) { #expect($0.status == .ok) }
            }
            try await Application(router: collector.zipkinRouter).test(.router) { client in
                try await client.execute(uri: "/api/v2/spans", method: .post, body: ByteBuffer(string: "[]")) {
                    #expect($0.status == .unauthorized)
                }
                try await client.execute(
                    uri: "/api/v2/spans", method: .post, headers: [.authorization: "Bearer in-secret"], body: ByteBuffer(string: "[]")
                ) { #expect($0.status == .accepted) }
            }
            try await Application(router: collector.otlpRouter).test(.router) { client in
                try await client.execute(
                    uri: "/v1/traces", method: .post, headers: [.contentType: "application/x-protobuf"], body: ByteBuffer()
                ) { #expect($0.status == .unauthorized) }
            }
        }
    }

    /// Every route of every port needs a token, the one of its group: none is left open by
    /// mistake (only the health routes and the page's own files are), and none takes the other
    /// group's token.
    @Test func everyRouteNeedsItsGroupsToken() async throws {
        try await withTokens { collector in
            let open: Set<String> = ["/readyz", "/healthz", "/health", "/", "/page/{file}"]
            for router in [collector.apiRouter, collector.zipkinRouter, collector.otlpRouter] {
                let routes = router.routes.filter { !open.contains($0.path.description) }
                    .map { (path: $0.path.description, method: $0.method) }
                #expect(routes.count >= 3)
                try await Application(router: router).test(.router) { client in
                    for route in routes {
                        let uri = route.path.replacingOccurrences(of: ":traceId", with: "1")
                            .replacingOccurrences(of: ":id", with: "1")
                        let token = route.method == .post ? "read-secret" : "in-secret"
                        for headers: HTTPFields in [[:], [.authorization: "Bearer \(token)"]] {
                            try await client.execute(uri: uri, method: route.method, headers: headers) { response in
                                #expect(response.status == .unauthorized, "\(route.method) \(route.path) with \(headers)")
                            }
                        }
                    }
                }
            }
        }
    }

    @Test func refusesGRPCCallsWithoutTheIngestToken() async throws {
        try await withTokens { collector in
            try await withGRPC(collector) { client in
                let traces = Opentelemetry_Proto_Collector_Trace_V1_TraceService.Client(wrapping: client)
                let request = Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest()
                await #expect { _ = try await traces.export(request) } throws: {
                    ($0 as? RPCError)?.code == .unauthenticated
                }
                let answer = try await traces.export(request, metadata: ["authorization": "Bearer in-secret"])
                #expect(!answer.hasPartialSuccess)
            }
        }
    }

    @Test func comparesTokensWholly() {
        #expect(AccessTokens.constantTimeEqual(Array("abc".utf8), Array("abc".utf8)))
        #expect(!AccessTokens.constantTimeEqual(Array("abc".utf8), Array("abd".utf8)))
        #expect(!AccessTokens.constantTimeEqual(Array("abc".utf8), Array("abcd".utf8)))
        #expect(AccessTokens().allows(.query, authorization: nil))
    }
}
