import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import SextantFixtures
import SextantModel
import SextantServer
import Testing

/// Time decides what the skew limit lets in, when Istio's counters count a call and which calls a
/// window that ends now holds: all read one clock, which a test sets instead of sleeping.
@Suite struct ClockRoutesTests {
    struct SpanTimes: Decodable { var timestamp: Int64 }

    @Test func theSkewLimitTheCountingGraceAndWindowsFollowTheCollectorsClock() async throws {
        let body = try Fixtures.bytes("envoy/zipkin/batch-001.json")
        let latest = try JSONDecoder().decode([SpanTimes].self, from: Data(body)).map(\.timestamp).max()!
        let latestSeconds = Double(latest) / 1_000_000
        // An hour before the spans were sent: they are 50 minutes past the 10-minute skew limit.
        let time = ManualClock(seconds: latestSeconds - 3600)
        try await withCollector(configure: {
            $0.store.clock = time.clock
            $0.store.countingGraceSeconds = 15
        }) { collector in
            func post() async throws -> (HTTPResponse.Status, String) {
                try await Application(router: collector.zipkinRouter).test(.router) { client in
                    try await client.execute(
                        uri: "/api/v2/spans", method: .post, headers: [.contentType: "application/json"],
                        body: ByteBuffer(bytes: body)
                    ) { ($0.status, String(buffer: $0.body)) }
                }
            }
            func api(_ uri: String) async throws -> String {
                try await Application(router: collector.apiRouter).test(.router) { client in
                    try await client.execute(uri: uri, method: .get) { String(buffer: $0.body) }
                }
            }
            let (refused, why) = try await post()
            #expect(refused == .badRequest)
            #expect(why.contains("ahead of the collector's clock"))

            time.set(seconds: latestSeconds + 60)
            #expect(try await post().0 == .accepted)
            // The default window (5m) ends at the collector's now and holds the calls.
            let graph = try JSONDecoder().decode(GraphJSON.self, from: Data(try await api("/api/v1/graph").utf8))
            #expect(graph.edges.contains { $0.source == "workload:default:productpage-v1" })
            #expect(!(try await api("/metrics")).contains("istio_requests_total{"))
            // Counted once the grace has passed on the collector's clock.
            time.advance(seconds: 16)
            #expect((try await api("/metrics")).contains("istio_requests_total{"))
            // An hour on, the same window is empty.
            time.advance(seconds: 3600)
            let later = try JSONDecoder().decode(GraphJSON.self, from: Data(try await api("/api/v1/graph").utf8))
            #expect(later.edges.isEmpty)
        }
    }

    @Test func exactQuantilesCoverTheLastCompleteMinutesOnMetricsAndFederate() async throws {
        let body = try Fixtures.bytes("envoy/zipkin/batch-001.json")
        let times = try JSONDecoder().decode([SpanTimes].self, from: Data(body)).map(\.timestamp)
        let time = ManualClock(seconds: Double(times.max()!) / 1_000_000 + 1)
        try await withCollector(configure: { $0.store.clock = time.clock }) { collector in
            try await Application(router: collector.zipkinRouter).test(.router) { client in
                try await client.execute(
                    uri: "/api/v2/spans", method: .post, headers: [.contentType: "application/json"],
                    body: ByteBuffer(bytes: body)
                ) { #expect($0.status == .accepted) }
            }
            func api(_ uri: String) async throws -> String {
                try await Application(router: collector.apiRouter).test(.router) { client in
                    try await client.execute(uri: uri, method: .get) { String(buffer: $0.body) }
                }
            }
            let name = "sextant_request_duration_quantile_seconds"
            // The minute of the spans is not complete yet: no window holds them.
            #expect(!(try await api("/metrics")).contains("\(name){"))
            // Two minutes on, the last five complete minutes hold them.
            time.advance(seconds: 120)
            let metrics = try await api("/metrics")
            #expect(metrics.contains("# TYPE \(name) gauge"))
            #expect(metrics.contains(#"destination_workload="productpage-v1""#))
            #expect(metrics.contains(#"window="5m",percentile="99"} "#))
            let federated = try await api("/federate?match[]=\(name)")
            // Federation sorts the labels, as Prometheus does.
            #expect(federated.contains(#"percentile="50",reporter="destination","#))
            #expect(federated.contains(#"window="5m"} "#))
        }
    }
}
