import SextantAnalytics
import SextantModel
import Testing

@Suite struct SignalsRangeTests {
    let edge = GraphSubject.edge(
        source: "workload:default:productpage-v1", target: "workload:default:reviews-v2", protocol: "http")

    @Test func eachStepCountsAsTheGraphDoesAndTheTotalIsTheGraphsEdge() throws {
        let first = [
            aggregate(.source, proxy: productpage, peer: reviews2, service: reviews, paired: true, count: 30, millis: 10),
            aggregate(.destination, proxy: reviews2, peer: productpage, service: reviews, paired: true, count: 30, millis: 8),
        ]
        let second = [
            aggregate(.source, proxy: productpage, peer: reviews2, service: reviews, code: 503, paired: false, count: 6),
            aggregate(.source, proxy: productpage, peer: reviews2, service: reviews, paired: false, count: 54, millis: 40),
        ]
        let range = SignalsRange(
            steps: [
                .init(fromSeconds: 1000, toSeconds: 1060, aggregates: first),
                .init(fromSeconds: 1060, toSeconds: 1120, aggregates: second),
            ],
            subject: edge, graphType: .workload, stepSeconds: 60)
        #expect(range.points.map(\.requests) == [30, 60])
        #expect(range.points.map(\.errors) == [0, 6])
        #expect(range.points.map(\.errorRate) == [0, 0.1])
        #expect(range.points.map(\.rps) == [0.5, 1])
        // Destination latency where the destination reported (8 ms), the source's otherwise.
        #expect(abs((range.points[0].latencyMs?.p50 ?? 0) - 8) < 0.2)
        #expect(abs((range.points[1].latencyMs?.p99 ?? 0) - 40) < 0.8)
        #expect(range.windowSeconds == 120)
        #expect(range.endUnixSeconds == 1120)

        let graph = ServiceGraph(aggregates: first + second, graphType: .workload, windowSeconds: 120, endUnixSeconds: 1120)
        let whole = try #require(graph.edges.first)
        #expect(range.total.requests == whole.requests)
        #expect(range.total.errors == whole.errors)
        #expect(range.total.rps == whole.rps)
        #expect(range.total.byCode == whole.byCode)
        #expect(range.total.sources == whole.sources)
        #expect(range.total.latencyMs == whole.latencyMs)
    }

    @Test func aNodeIsItsInboundOrOutboundCalls() {
        let calls = [
            aggregate(.source, proxy: productpage, peer: reviews2, service: reviews, paired: false, count: 5),
            aggregate(.destination, proxy: productpage, peer: nil, service: productpageService, paired: false, count: 7),
        ]
        let step = [SignalsRange.Step(fromSeconds: 0, toSeconds: 10, aggregates: calls)]
        let inbound = SignalsRange(
            steps: step, subject: .node(id: "workload:default:productpage-v1", outbound: false), graphType: .workload,
            stepSeconds: 10)
        let outbound = SignalsRange(
            steps: step, subject: .node(id: "workload:default:productpage-v1", outbound: true), graphType: .workload,
            stepSeconds: 10)
        #expect(inbound.total.requests == 7)
        #expect(outbound.total.requests == 5)
        #expect(inbound.direction == "inbound")
    }

    @Test func stepsAreAlignedOnTheEndAndTheFirstIsCutShort() {
        let steps = SignalsRange.steps(windowSeconds: 150, endSeconds: 1000, stepSeconds: 60)
        #expect(steps.map(\.from) == [850, 880, 940])
        #expect(steps.map(\.to) == [880, 940, 1000])
    }
}
