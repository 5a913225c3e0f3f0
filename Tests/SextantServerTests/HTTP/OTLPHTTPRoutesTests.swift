import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import SextantFixtures
import SextantServer
import SextantWire
import SwiftProtobuf
import Testing

@Suite struct OTLPHTTPTests {
    @Test func takesProtobufAndJSONAndAnswersInKind() async throws {
        try await withCollector { collector in
            try await Application(router: collector.otlpRouter).test(.router) { client in
                let traces = try Fixtures.bytes("envoy/otlp/traces/export-002.pb")
                try await client.execute(
                    uri: "/v1/traces", method: .post, headers: [.contentType: "application/x-protobuf"],
                    body: ByteBuffer(bytes: traces)
                ) { response in
                    #expect(response.status == .ok)
                    #expect(response.headers[.contentType] == "application/x-protobuf")
                    let answer = try Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceResponse(
                        serializedBytes: Array(buffer: response.body))
                    #expect(!answer.hasPartialSuccess)
                }
                let json = """
                    {"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"web"}}]},
                     "scopeSpans":[{"spans":[
                      {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"GET /","kind":2,
                       "startTimeUnixNano":"1795706850000000000","endTimeUnixNano":"1795706850100000000"},
                      {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"0000000000000000","name":"bad","kind":2,
                       "startTimeUnixNano":"1795706850000000000","endTimeUnixNano":"1795706850100000000"}]}]}]}
                    """
                try await client.execute(
                    uri: "/v1/traces", method: .post, headers: [.contentType: "application/json"],
                    body: ByteBuffer(string: json)
                ) { response in
                    #expect(response.status == .ok)
                    let text = String(buffer: response.body)
                    #expect(text.contains("\"rejectedSpans\":\"1\""))
                    #expect(text.contains("span_id must be 8 bytes"))
                }
            }
        }
    }

    @Test func refusesBadBodiesClearly() async throws {
        try await withCollector { collector in
            try await Application(router: collector.otlpRouter).test(.router) { client in
                let traces = try Fixtures.bytes("envoy/otlp/traces/export-002.pb")
                try await client.execute(
                    uri: "/v1/traces", method: .post, headers: [.contentType: "application/x-protobuf"],
                    body: ByteBuffer(bytes: traces.prefix(traces.count / 2))
                ) { response in
                    #expect(response.status == .badRequest)
                    #expect(String(buffer: response.body).contains("not a protobuf"))
                }
                try await client.execute(
                    uri: "/v1/logs", method: .post, headers: [.contentType: "text/csv"], body: ByteBuffer(string: "a,b")
                ) { #expect($0.status == .unsupportedMediaType) }
                try await client.execute(
                    uri: "/v1/logs", method: .post, headers: [.contentType: "application/json"],
                    body: ByteBuffer(string: "[1,2")
                ) { #expect($0.status == .badRequest) }
            }
        }
    }
}
