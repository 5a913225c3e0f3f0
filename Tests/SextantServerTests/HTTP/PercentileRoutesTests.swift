import Foundation
import Hummingbird
import HummingbirdTesting
import SextantModel
import SextantServer
import Testing

@Suite struct PercentileRoutesTests {
    struct Graph: Decodable {
        struct Latency: Decodable { var p50, p90, p95, p99: Double }
        struct Edge: Decodable {
            var requests: Int
            var latencyMs: Latency?
        }
        var edges: [Edge]
    }

    /// `/api/v1/graph` percentiles over a window that crosses raw, minute, 10-minute and hour tiers
    /// stay within 1 % of the exact percentiles of the calls in it.
    @Test func graphPercentilesAreWithinOnePercentAcrossTiers() async throws {
        try await withCollector { collector in
            let web = WorkloadIdentity(namespace: "shop", workload: "web-v1", app: "web", version: "v1")
            let api = WorkloadIdentity(namespace: "shop", workload: "api-v1", app: "api", version: "v1")
            let service = ServiceRef(host: "api.shop.svc.cluster.local", name: "api", namespace: "shop")
            let start: Int64 = 1_795_698_000 - 1234  // not aligned to any tier
            var state: UInt64 = 42
            func uniform() -> Double {
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                return (Double(state >> 11) + 0.5) / Double(1 << 53)
            }
            // Three hours of log-normal latencies (median 20 ms), a call every 0.9 s.
            var calls: [(Int64, Int64)] = []
            for i in 0..<12_000 {
                let normal = sqrt(-2 * log(uniform())) * cos(2 * Double.pi * uniform())
                calls.append(((start * 1_000_000) + Int64(i) * 900_000 + 77, Int64(20_000 * exp(0.8 * normal)) + 1))
            }
            for chunk in stride(from: 0, to: calls.count, by: 2000) {
                let requests = calls[chunk..<min(chunk + 2000, calls.count)].enumerated().map { i, c in
                    CallReport(
                        reporter: .source, proxy: web, peer: api, service: service, startMicros: c.0,
                        durationMicros: c.1, responseCode: 200, requestID: "p\(chunk + i)", channel: .accessLog)
                }
                _ = try await collector.database.write([IngestBatch(requests: requests)])
            }
            let end = start + 9000 - 17
            let from = (end - 7200) * 1_000_000
            let exact = calls.filter { $0.0 >= from && $0.0 < end * 1_000_000 }.map(\.1).sorted()
            try await Application(router: collector.apiRouter).test(.router) { client in
                try await client.execute(uri: "/api/v1/graph?graphType=workload&window=2h&end=\(end)", method: .get) {
                    response in
                    #expect(response.status == .ok)
                    let graph = try JSONDecoder().decode(Graph.self, from: Data(buffer: response.body))
                    let edge = try #require(graph.edges.first)
                    #expect(edge.requests == exact.count)
                    let latency = try #require(edge.latencyMs)
                    for (q, value) in [(0.5, latency.p50), (0.9, latency.p90), (0.95, latency.p95), (0.99, latency.p99)] {
                        let truth = Double(exact[Int((q * Double(exact.count - 1)).rounded(.down))]) / 1000
                        #expect(abs(value - truth) / truth <= 0.0101, "p\(Int(q * 100)): \(value) ms vs exact \(truth) ms")
                    }
                }
            }
        }
    }
}
