import Foundation
import Hummingbird
import HummingbirdTesting
import SextantAnalytics
import SextantModel
import Testing

@testable import SextantServer

/// Query mode against a stand-in Prometheus API on loopback: the answers' JSON read, the window's
/// two ends asked for, exact quantiles used only where one Sextant's gauges speak for an item.
@Suite struct PrometheusCallsTests {
    /// Answers `/api/v1/query` with `vectors(query, time)`, and remembers what it was asked.
    private func withStandIn(
        _ vectors: @escaping @Sendable (String, Double) -> String,
        _ body: @Sendable (PrometheusCalls) async throws -> Void
    ) async throws {
        let router = Router()
        router.get("/api/v1/query") { request, _ -> Response in
            let query = request.uri.queryParameters["query"].map(String.init) ?? ""
            let time = request.uri.queryParameters["time"].flatMap { Double(String($0)) } ?? 0
            let body = #"{"status":"success","data":{"resultType":"vector","result":["# + vectors(query, time) + "]}}"
            return Response(status: .ok, body: ResponseBody(byteBuffer: ByteBuffer(string: body)))
        }
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await app.test(.live) { client in
            let port = try #require(client.port)
            try await body(PrometheusCalls(api: PrometheusAPI(baseURL: "http://127.0.0.1:\(port)")))
        }
    }

    static func series(_ labels: [String: String], _ value: Double, _ time: Double) -> String {
        let metric = labels.map { #""\#($0.key)":"\#($0.value)""# }.joined(separator: ",")
        return #"{"metric":{\#(metric)},"value":[\#(time),"\#(value)"]}"#
    }

    @Test func readsEachMetricAtTheWindowsTwoEnds() async throws {
        let labels = IstioSeriesReaderTests.labels(reporter: "source", source: "reviews-v2", destination: "ratings-v1")
        try await withStandIn({ query, time in
            guard query.hasPrefix("last_over_time(istio_requests_total[") else { return "" }
            // 100 calls before the window, 142 at its end.
            return Self.series(labels, time >= 2_000 ? 142 : 100, time)
        }) { calls in
            let aggregates = try await calls.aggregates(from: 1_000, to: 2_000)
            #expect(aggregates.map(\.count) == [42])
            #expect(aggregates.first?.proxy.workload == "reviews-v2")
            #expect(aggregates.first?.peer?.workload == "ratings-v1")
        }
    }

    @Test func exactQuantilesOnlyWhereOneSextantsGaugesCoverAnItem() async throws {
        @Sendable func gauge(_ workload: String, _ percentile: String, shard: String) -> [String: String] {
            [
                "reporter": "destination", "destination_workload": workload, "destination_workload_namespace": "default",
                "window": "1m", "percentile": percentile, "shard": shard,
            ]
        }
        try await withStandIn({ query, time in
            guard query.hasPrefix("sextant_request_duration_quantile_seconds") else { return "" }
            var vectors: [String] = []
            for (p, s) in [("50", 0.004), ("90", 0.009), ("99", 0.020)] {
                vectors.append(Self.series(gauge("ratings-v1", p, shard: "east"), s, time))
                // details-v1 is reported by two Sextants: their quantiles cannot be merged.
                vectors.append(Self.series(gauge("details-v1", p, shard: "east"), s, time))
                vectors.append(Self.series(gauge("details-v1", p, shard: "west"), s * 2, time))
            }
            return vectors.joined(separator: ",")
        }) { calls in
            let interpolated = ServiceGraph.Latency(LatencySketch(index: 300, count: 10, sumMicros: 50_000))!
            func item(_ name: String) throws -> GoldenSignals.Item {
                let json = #"{"name":"\#(name)","namespace":"default","requests":10,"rps":1,"errors":0,"serverErrors":0,"#
                    + #""errorRate":0,"saturation":{"inFlight":0,"overflowRequests":0,"rateLimitedRequests":0}}"#
                var item = try JSONDecoder().decode(GoldenSignals.Item.self, from: Data(json.utf8))
                item.latencyMs = interpolated
                return item
            }
            var items = [try item("ratings-v1"), try item("details-v1")]
            let exact = try await calls.exactLatency(
                &items, by: .workload, windowSeconds: 60, endSeconds: 10_000, now: 10_000)
            #expect(exact == ["ratings-v1"])
            #expect(items[0].latencyMs?.p50 == 4)
            #expect(items[0].latencyMs?.p90 == 9)
            #expect(items[0].latencyMs?.p99 == 20)
            #expect(items[1].latencyMs == interpolated)
            // A window the gauges do not cover, or one that does not end now: nothing is exact.
            var again = [try item("ratings-v1")]
            #expect(try await calls.exactLatency(&again, by: .workload, windowSeconds: 3_600, endSeconds: 10_000, now: 10_000).isEmpty)
            #expect(try await calls.exactLatency(&again, by: .workload, windowSeconds: 60, endSeconds: 5_000, now: 10_000).isEmpty)
        }
    }

    @Test func aStoreThatRefusesIsNamed() async throws {
        let router = Router()
        router.get("/api/v1/query") { _, _ -> Response in
            Response(
                status: .badRequest,
                body: ResponseBody(byteBuffer: ByteBuffer(string: #"{"status":"error","errorType":"bad_data","error":"parse error"}"#)))
        }
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await app.test(.live) { client in
            let calls = PrometheusCalls(api: PrometheusAPI(baseURL: "http://127.0.0.1:\(try #require(client.port))"))
            await #expect { try await calls.aggregates(from: 0, to: 60) } throws: { error in
                "\(error)".contains("refused") && "\(error)".contains("parse error")
            }
        }
    }
}
