import SextantModel
import Testing

@testable import SextantServer

@Suite struct LatencyQuantilesTests {
    let reviews = WorkloadIdentity(namespace: "default", workload: "reviews-v2", app: "reviews", version: "v2")
    let productpage = WorkloadIdentity(namespace: "default", workload: "productpage-v1", app: "productpage", version: "v1")
    let service = ServiceRef(host: "reviews.default.svc.cluster.local", name: "reviews", namespace: "default")

    func calls(_ reporter: Reporter, millis: ClosedRange<Int64>, protocol proto: RequestProtocol = .http) -> [CallAggregate] {
        millis.map { ms in
            CallAggregate(
                reporter: reporter, proxy: reporter == .destination ? reviews : productpage,
                peer: reporter == .destination ? productpage : reviews, service: service, requestProtocol: proto,
                responseCode: 200, grpcStatus: nil, responseFlags: "-", paired: true,
                latency: LatencySketch(index: LatencySketch.index(micros: ms * 1000), count: 1, sumMicros: Double(ms * 1000)),
                sources: .spans, count: 1, durationMicrosSum: ms * 1000, requestBytes: 0, responseBytes: 0)
        }
    }

    @Test func quantilesPerReporterAndDestinationWithinOnePercent() throws {
        // 1,000 calls of 1 … 1,000 ms: the exact p50, p90 and p99 are 0.5, 0.9 and 0.99 s.
        let family = LatencyQuantiles.family(windows: [
            ("5m", calls(.destination, millis: 1...1000) + calls(.source, millis: 1...1000)
                + calls(.destination, millis: 1...5, protocol: .tcp))
        ])
        #expect(family.name == "sextant_request_duration_quantile_seconds")
        #expect(family.type == .gauge)
        #expect(family.samples.count == 6)
        for sample in family.samples {
            let labels = Dictionary(uniqueKeysWithValues: sample.labels.map { ($0.name, $0.value) })
            #expect(labels["destination_workload"] == "reviews-v2")
            #expect(labels["destination_service"] == "reviews.default.svc.cluster.local")
            #expect(labels["window"] == "5m")
            let exact = ["50": 0.5, "90": 0.9, "99": 0.99][labels["percentile"]!]!
            #expect(abs(sample.value - exact) / exact <= 0.01, "\(labels) \(sample.value)")
        }
        #expect(Set(family.samples.map { $0.labels[0].value }) == ["source", "destination"])
    }

    @Test func windowsAreTheLastCompleteMinutes() {
        let now: Int64 = 1_795_706_850_714_252  // 30.7 s into a minute
        let ranges = LatencyQuantiles.ranges(nowMicros: now)
        let minute: Int64 = 60_000_000
        let end = now / minute * minute
        #expect(ranges.map(\.label) == ["1m", "5m"])
        #expect(ranges.map(\.to) == [end, end])
        #expect(ranges.map(\.from) == [end - minute, end - 5 * minute])
    }
}
