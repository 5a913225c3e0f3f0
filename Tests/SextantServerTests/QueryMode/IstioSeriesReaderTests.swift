import SextantAnalytics
import SextantModel
import Testing

@testable import SextantServer

/// Istio's series read back into the graph's calls (query mode), without a Prometheus.
@Suite struct IstioSeriesReaderTests {
    static func labels(
        reporter: String, source: String, destination: String, code: String = "200", shard: String = "east"
    ) -> [String: String] {
        [
            "reporter": reporter, "source_workload": source, "source_workload_namespace": source == "unknown" ? "unknown" : "default",
            "source_canonical_service": source, "source_app": source, "destination_workload": destination,
            "destination_workload_namespace": "default", "destination_canonical_service": destination,
            "destination_service": "\(destination).default.svc.cluster.local", "destination_service_name": destination,
            "destination_service_namespace": "default", "request_protocol": "http", "response_code": code,
            "response_flags": "-", "shard": shard,
        ]
    }

    static func window(
        requests: [PromSample], before: [PromSample] = [], buckets: [PromSample] = []
    ) -> IstioSeriesReader.Window {
        IstioSeriesReader.Window(
            requests: (requests, before), durationBuckets: (buckets, []), durationSum: ([], []),
            requestBytesSum: ([], []), responseBytesSum: ([], []), tcpOpened: ([], []), tcpSent: ([], []),
            tcpReceived: ([], []))
    }

    @Test func aCallIsCountedOnceFromItsSourceReport() {
        let aggregates = IstioSeriesReader.aggregates(
            Self.window(requests: [
                PromSample(labels: Self.labels(reporter: "source", source: "productpage", destination: "details"), value: 40),
                // The destination's report of the same calls, written by another Sextant.
                PromSample(
                    labels: Self.labels(reporter: "destination", source: "productpage", destination: "details", shard: "west"),
                    value: 40),
                // Calls from outside the mesh: only the destination saw them.
                PromSample(labels: Self.labels(reporter: "destination", source: "unknown", destination: "productpage"), value: 7),
            ]))
        let graph = ServiceGraph(aggregates: aggregates, graphType: .workload, windowSeconds: 60, endUnixSeconds: 60)
        let edges = Dictionary(uniqueKeysWithValues: graph.edges.map { ("\($0.source)>\($0.target)", $0.requests) })
        #expect(edges == ["workload:default:productpage>workload:default:details": 40, "unknown>workload:default:productpage": 7])
    }

    @Test func countsAreTheIncreaseOverTheWindowAndSurviveAReset() {
        let series = Self.labels(reporter: "source", source: "reviews", destination: "ratings")
        let grown = IstioSeriesReader.aggregates(
            Self.window(
                requests: [PromSample(labels: series, value: 130)], before: [PromSample(labels: series, value: 100)]))
        #expect(grown.map(\.count) == [30])
        // Less at the end than at the start: the counter restarted, its value is what came since.
        let reset = IstioSeriesReader.aggregates(
            Self.window(requests: [PromSample(labels: series, value: 12)], before: [PromSample(labels: series, value: 100)]))
        #expect(reset.map(\.count) == [12])
        // Two shards' series of one label set add up.
        var other = series
        other["shard"] = "west"
        let both = IstioSeriesReader.aggregates(
            Self.window(requests: [PromSample(labels: series, value: 5), PromSample(labels: other, value: 6)]))
        #expect(both.map(\.count) == [11])
    }

    @Test func latencyIsInterpolatedWithinTheBuckets() {
        let series = Self.labels(reporter: "source", source: "reviews", destination: "ratings")
        func bucket(_ le: String, _ value: Double) -> PromSample {
            var labels = series
            labels["le"] = le
            return PromSample(labels: labels, value: value)
        }
        // 100 calls: 50 in (5, 10] ms, 50 in (10, 25] ms.
        let aggregates = IstioSeriesReader.aggregates(
            Self.window(
                requests: [PromSample(labels: series, value: 100)],
                buckets: [bucket("5", 0), bucket("10", 50), bucket("25", 100), bucket("+Inf", 100)]))
        let latency = try! #require(aggregates.first?.latency)
        let p25 = latency.quantile(0.25)! / 1_000
        let p75 = latency.quantile(0.75)! / 1_000
        #expect(p25 > 5 && p25 <= 10.2)
        #expect(p75 > 10 && p75 <= 25.5)
        #expect(abs(p25 - 7.5) < 1 && abs(p75 - 17.5) < 2)
    }
}
