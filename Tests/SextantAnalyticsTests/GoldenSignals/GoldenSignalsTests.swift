import SextantAnalytics
import SextantModel
import Testing

@Suite struct GoldenSignalsTests {
    @Test func summarisesTrafficErrorsLatencyAndSaturationPerWorkload() throws {
        let calls = [
            aggregate(.source, proxy: productpage, peer: reviews2, service: reviews, paired: true, count: 90, millis: 100),
            aggregate(.source, proxy: productpage, peer: reviews2, service: reviews, code: 500, paired: true, count: 10, millis: 100),
            aggregate(.destination, proxy: reviews2, peer: productpage, service: reviews, paired: true, count: 100, millis: 80),
        ]
        let signals = GoldenSignals(aggregates: calls, by: .workload, windowSeconds: 10, endUnixSeconds: 1000)
        let item = try #require(signals.items.first { $0.name == "reviews-v2" })
        #expect(item.requests == 100)
        #expect(item.rps == 10)
        #expect(item.errorRate == 0.1)
        #expect(abs((item.latencyMs?.p99 ?? 0) - 80) <= 0.8)
        // 100 calls × 0.1 s over 10 s: one call in flight on average.
        #expect(item.saturation.inFlight == 1)
        let byService = GoldenSignals(
            aggregates: calls, by: .service, windowSeconds: 10, endUnixSeconds: 1000, name: "reviews")
        #expect(byService.items.map(\.requests) == [100])
    }
}

extension GoldenSignalsTests {
    @Test func carriesProxyGaugesIntoSaturation() throws {
        let calls = [aggregate(.destination, proxy: reviews2, peer: nil, service: reviews, paired: false, count: 10)]
        var gauges = GoldenSignals.ProxyGauges()
        gauges.activeRequests = 4
        let signals = GoldenSignals(
            aggregates: calls, by: .workload, windowSeconds: 10, endUnixSeconds: 1000, gauges: ["reviews-v2": gauges])
        #expect(signals.items.first?.saturation.proxy?.activeRequests == 4)
    }
}
