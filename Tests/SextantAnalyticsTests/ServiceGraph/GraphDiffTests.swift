import SextantAnalytics
import SextantModel
import Testing

@Suite struct GraphDiffTests {
    let ratings = WorkloadIdentity(namespace: "default", workload: "ratings-v1", app: "ratings", version: "v1")
    let ratingsService = ServiceRef(host: "ratings.default.svc.cluster.local", name: "ratings", namespace: "default")
    let details = WorkloadIdentity(namespace: "default", workload: "details-v1", app: "details", version: "v1")
    let detailsService = ServiceRef(host: "details.default.svc.cluster.local", name: "details", namespace: "default")

    func diff(_ current: [CallAggregate], _ baseline: [CallAggregate], minRequests: Int = 20) -> GraphDiff {
        GraphDiff(
            current: current, baseline: baseline, graphType: .workload, windowSeconds: 60, endUnixSeconds: 2000,
            baselineEndUnixSeconds: 1940, minRequests: minRequests)
    }

    @Test func ranksTheEdgeThatStartedFailingFirst() throws {
        let healthy = [
            aggregate(.source, proxy: productpage, peer: reviews2, service: reviews, paired: false, count: 100),
            aggregate(.source, proxy: reviews2, peer: ratings, service: ratingsService, paired: false, count: 100),
        ]
        let now = [
            aggregate(.source, proxy: productpage, peer: reviews2, service: reviews, paired: false, count: 100, millis: 14),
            aggregate(.source, proxy: reviews2, peer: ratings, service: ratingsService, paired: false, count: 50),
            aggregate(.source, proxy: reviews2, peer: ratings, service: ratingsService, code: 500, paired: false, count: 50),
        ]
        let d = diff(now, healthy)
        let worst = try #require(d.edges.first)
        #expect(worst.source == "workload:default:reviews-v2")
        #expect(worst.target == "workload:default:ratings-v1")
        #expect(worst.changes.map(\.kind) == [.newErrors])
        #expect(worst.current.errorRate == 0.5)
        #expect(worst.baseline.errorRate == 0)
        // 10 ms → 14 ms at p99 is a 40 % rise: ranked, below the errors.
        #expect(d.edges.count == 2)
        #expect(d.edges[1].changes.map(\.kind) == [.latencyIncrease])
        #expect(d.nodes.first?.id == "workload:default:ratings-v1")
        #expect(d.current.startUnixSeconds == 1940)
        #expect(d.baseline.endUnixSeconds == 1940)
    }

    @Test func aRiseOfTheErrorRateVanishedAndNewEdges() throws {
        let before = [
            aggregate(.source, proxy: productpage, peer: reviews2, service: reviews, paired: false, count: 95),
            aggregate(.source, proxy: productpage, peer: reviews2, service: reviews, code: 503, paired: false, count: 5),
            aggregate(.source, proxy: productpage, peer: details, service: detailsService, paired: false, count: 40),
        ]
        let now = [
            aggregate(.source, proxy: productpage, peer: reviews2, service: reviews, paired: false, count: 80),
            aggregate(.source, proxy: productpage, peer: reviews2, service: reviews, code: 503, paired: false, count: 20),
            aggregate(.source, proxy: reviews2, peer: ratings, service: ratingsService, paired: false, count: 3),
        ]
        let d = diff(now, before)
        let kinds = Dictionary(uniqueKeysWithValues: d.edges.map { ("\($0.source)->\($0.target)", $0.changes.map(\.kind)) })
        #expect(kinds["workload:default:productpage-v1->workload:default:details-v1"] == [.trafficVanished])
        #expect(kinds["workload:default:productpage-v1->workload:default:reviews-v2"] == [.errorRateIncrease])
        #expect(kinds["workload:default:reviews-v2->workload:default:ratings-v1"] == [.appeared])
        // Vanished (50) before a 15-point rise of the error rate, before an edge that appeared (1).
        #expect(d.edges.map(\.score) == [50, 15, 1])
    }

    @Test func fewCallsAreNotRankedAsAChange() {
        let before = [aggregate(.source, proxy: productpage, peer: reviews2, service: reviews, paired: false, count: 10)]
        let now = [
            aggregate(.source, proxy: productpage, peer: reviews2, service: reviews, code: 500, paired: false, count: 5, millis: 90),
            aggregate(.source, proxy: productpage, peer: reviews2, service: reviews, paired: false, count: 5, millis: 90),
        ]
        #expect(diff(now, before).edges.isEmpty)
        #expect(diff(now, before, minRequests: 5).edges.first?.changes.map(\.kind) == [.newErrors, .latencyIncrease])
    }

    @Test func nothingChangedIsAnEmptyDiff() {
        let calls = [aggregate(.source, proxy: productpage, peer: reviews2, service: reviews, paired: false, count: 100)]
        let d = diff(calls, calls)
        #expect(d.edges.isEmpty)
        #expect(d.nodes.isEmpty)
    }
}
