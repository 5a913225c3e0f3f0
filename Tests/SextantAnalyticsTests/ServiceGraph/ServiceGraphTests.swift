import SextantAnalytics
import SextantModel
import Testing

@Suite struct ServiceGraphTests {
    let aggregates = [
        // 10 calls productpage → reviews-v2 seen by both proxies, 2 of them 503.
        aggregate(.source, proxy: productpage, peer: reviews2, service: reviews, paired: true, count: 8, millis: 12),
        aggregate(.source, proxy: productpage, peer: reviews2, service: reviews, code: 503, paired: true, count: 2),
        aggregate(.destination, proxy: reviews2, peer: productpage, service: reviews, paired: true, count: 8, millis: 9),
        aggregate(
            .destination, proxy: reviews2, peer: productpage, service: reviews, code: 503, paired: true, count: 2,
            millis: 9),
        // 5 calls from a caller without a sidecar, seen only by productpage's inbound proxy.
        aggregate(.destination, proxy: productpage, peer: nil, service: productpageService, paired: false, count: 5),
        // 3 calls to a service whose workload never reported.
        aggregate(
            .source, proxy: productpage, peer: nil, service: ServiceRef(host: "api.example.com", name: "api.example.com", namespace: "unknown"),
            code: 404, paired: false, count: 3, sources: .accessLog),
    ]

    @Test func countsEachCallOnceAndPrefersServerSideLatency() throws {
        let graph = ServiceGraph(aggregates: aggregates, graphType: .workload, windowSeconds: 60, endUnixSeconds: 1000)
        let edge = try #require(graph.edges.first { $0.target == "workload:default:reviews-v2" })
        #expect(edge.source == "workload:default:productpage-v1")
        #expect(edge.requests == 10)
        #expect(edge.errors == 2)
        #expect(edge.serverErrors == 2)
        #expect(edge.byCode == ["200": 8, "503": 2])
        #expect(edge.errorRate == 0.2)
        #expect(abs((edge.latencyMs?.p50 ?? 0) - 9) <= 0.09)
        #expect(edge.rps == 0.167)
    }

    @Test func namesCallersWithoutSidecarsUnknownAndUnreportedCalleesByService() throws {
        let graph = ServiceGraph(aggregates: aggregates, graphType: .workload, windowSeconds: 60, endUnixSeconds: 1000)
        let fromUnknown = try #require(graph.edges.first { $0.source == "unknown" })
        #expect(fromUnknown.requests == 5)
        let external = try #require(graph.edges.first { $0.target == "service:api.example.com" })
        #expect(external.errors == 3)
        #expect(external.serverErrors == 0)
        #expect(external.sources == ["accesslog"])
        #expect(Set(graph.nodes.map(\.type)) == ["unknown", "workload", "service"])
    }

    @Test func mergesVersionsInTheAppGraph() {
        let other = WorkloadIdentity(namespace: "default", workload: "reviews-v3", app: "reviews", version: "v3")
        let more = aggregates + [
            aggregate(.source, proxy: productpage, peer: other, service: reviews, paired: false, count: 4)
        ]
        let app = ServiceGraph(aggregates: more, graphType: .app, windowSeconds: 60, endUnixSeconds: 1000)
        #expect(app.edges.first { $0.target == "app:default:reviews" }?.requests == 14)
        let versioned = ServiceGraph(aggregates: more, graphType: .versionedApp, windowSeconds: 60, endUnixSeconds: 1000)
        #expect(versioned.edges.filter { $0.target.hasPrefix("versionedApp:default:reviews") }.count == 2)
        let services = ServiceGraph(aggregates: more, graphType: .service, windowSeconds: 60, endUnixSeconds: 1000)
        #expect(services.edges.first { $0.target == "service:reviews.default.svc.cluster.local" }?.requests == 14)
    }
}
