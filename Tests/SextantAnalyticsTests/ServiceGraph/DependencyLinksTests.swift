import SextantAnalytics
import SextantModel
import Testing

@Suite struct DependencyLinksTests {
    @Test func countsEachCallOnceBetweenWorkloadNamesAsEnvoySpansWriteThem() {
        let external = ServiceRef(host: "api.example.com", name: "api.example.com", namespace: "unknown")
        let productpageService = ServiceRef(
            host: "productpage.default.svc.cluster.local", name: "productpage", namespace: "default")
        var tcp = aggregate(.source, proxy: productpage, peer: reviews2, service: reviews, paired: true, count: 4)
        tcp.requestProtocol = .tcp
        let links = DependencyLinks(aggregates: [
            // Both proxies reported the same 10 calls, 2 of them 503: counted once, from the source.
            aggregate(.source, proxy: productpage, peer: reviews2, service: reviews, paired: true, count: 8),
            aggregate(.source, proxy: productpage, peer: reviews2, service: reviews, code: 503, paired: true, count: 2),
            aggregate(.destination, proxy: reviews2, peer: productpage, service: reviews, paired: true, count: 10),
            // A caller outside the mesh: no link, as Zipkin skips a root server span.
            aggregate(.destination, proxy: productpage, peer: nil, service: productpageService, paired: false, count: 5),
            // No sidecar answered: the called service names the child.
            aggregate(.source, proxy: productpage, peer: nil, service: external, code: 404, paired: false, count: 3),
            aggregate(.source, proxy: productpage, peer: nil, service: reviews, paired: false, count: 1),
            tcp,
        ]).links
        #expect(
            links == [
                .init(parent: "productpage.default", child: "api.example.com", callCount: 3, errorCount: 3),
                .init(parent: "productpage.default", child: "reviews.default", callCount: 11, errorCount: 2),
            ])
    }
}
