import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import SextantFixtures
import SextantServer
import Testing

@Suite struct IngestLimitsRoutesTests {
    static func span(id: String, startMicros: Int64, duration: Int64 = 1500) -> String {
        #"{"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","id":"\#(id)","name":"get","kind":"SERVER","#
            + #""timestamp":\#(startMicros),"duration":\#(duration),"localEndpoint":{"serviceName":"api"}}"#
    }

    static func metrics(_ client: some TestClientProtocol) async throws -> String {
        try await client.execute(uri: "/metrics", method: .get) { String(buffer: $0.body) }
    }

    @Test func rejectsFutureAndNegativeSpansAloneAndCountsThemByReason() async throws {
        let now = Int64(Date().timeIntervalSince1970 * 1_000_000)
        let body = "[" + [
            Self.span(id: "1111111111111111", startMicros: now),
            Self.span(id: "2222222222222222", startMicros: now + 3_600_000_000),
            Self.span(id: "3333333333333333", startMicros: now, duration: -1),
        ].joined(separator: ",") + "]"
        try await withCollector { collector in
            try await Application(router: collector.zipkinRouter).test(.router) { client in
                try await client.execute(
                    uri: "/api/v2/spans", method: .post, headers: [.contentType: "application/json"],
                    body: ByteBuffer(string: body)
                ) { response in
                    #expect(response.status == .badRequest)
                    let text = String(buffer: response.body)
                    #expect(text.contains("rejected 2 of 3 spans"))
                    #expect(text.contains("s ahead of the collector's clock"))
                    #expect(text.contains("must not be negative"))
                }
            }
            try await Application(router: collector.apiRouter).test(.router) { client in
                let text = try await Self.metrics(client)
                #expect(text.contains(#"sextant_ingest_rejected_records_total{channel="zipkin",reason="future_timestamp"} 1"#))
                #expect(text.contains(#"sextant_ingest_rejected_records_total{channel="zipkin",reason="negative_duration"} 1"#))
                #expect(text.contains("sextant_stored_spans_total 1"))
            }
        }
    }

    @Test func refusesARequestWithTooManyRecordsAs413() async throws {
        try await withCollector(configure: { $0.limits.maxRecordsPerRequest = 4 }) { collector in
            try await Application(router: collector.zipkinRouter).test(.router) { client in
                try await client.execute(
                    uri: "/api/v2/spans", method: .post, headers: [.contentType: "application/json"],
                    body: ByteBuffer(bytes: try Fixtures.bytes("envoy/zipkin/batch-001.json"))
                ) { response in
                    #expect(response.status == .contentTooLarge)
                    #expect(String(buffer: response.body).contains("--max-records-per-request"))
                }
            }
            try await Application(router: collector.apiRouter).test(.router) { client in
                let text = try await Self.metrics(client)
                #expect(text.contains(#"sextant_ingest_rejected_requests_total{channel="zipkin",reason="too_many_records"} 1"#))
                #expect(text.contains("sextant_stored_spans_total 0"))
            }
        }
    }

    @Test func shedsIngestWith503AndRetryAfterWhenMemoryIsPastTheLimit() async throws {
        // Any process is past a limit of one megabyte.
        try await withCollector(configure: { $0.server.memoryLimitBytes = 1 << 20 }) { collector in
            try await Application(router: collector.zipkinRouter).test(.router) { client in
                try await client.execute(
                    uri: "/api/v2/spans", method: .post, headers: [.contentType: "application/json"],
                    body: ByteBuffer(bytes: try Fixtures.bytes("envoy/zipkin/batch-001.json"))
                ) { response in
                    #expect(response.status == .serviceUnavailable)
                    #expect(response.headers[.retryAfter] == "1")
                    #expect(String(buffer: response.body).contains("--memory-limit"))
                }
            }
            try await Application(router: collector.apiRouter).test(.router) { client in
                let text = try await Self.metrics(client)
                #expect(text.contains(#"sextant_ingest_refused_total{channel="zipkin",reason="memory"} 1"#))
                #expect(text.contains("sextant_memory_limit_bytes 1.048576e+06"))
            }
        }
    }
}
