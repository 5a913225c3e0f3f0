import SextantModel
import Testing

@testable import SextantServer

/// Which proxy statsd's sender is, from the node ids ALS and the metrics service taught.
@Suite struct ProxyDirectoryTests {
    private static let reviews = "sidecar~10.1.0.7~reviews-v1-5d8f9c7b6-x2k4q.bookinfo~bookinfo.svc.cluster.local"

    @Test func namesTheOneProxyOfAnIP() {
        let directory = ProxyDirectory()
        directory.learn(nodeID: Self.reviews, identity: WorkloadIdentity(namespace: "bookinfo", workload: "reviews-v1"))
        #expect(
            directory.labels(forIP: "10.1.0.7") == [
                MetricLabelPair("namespace", "bookinfo"), MetricLabelPair("workload", "reviews-v1"),
                MetricLabelPair("pod", "reviews-v1-5d8f9c7b6-x2k4q"),
            ])
        #expect(directory.labels(forIP: "10.1.0.8") == [MetricLabelPair("instance", "10.1.0.8")])
    }

    @Test func aNodeLearnedAgainWithAnotherIdentityIsRenamed() {
        let directory = ProxyDirectory()
        for _ in 0..<3 {
            directory.learn(nodeID: Self.reviews, identity: WorkloadIdentity(namespace: "bookinfo", workload: "reviews-v1"))
        }
        directory.learn(nodeID: Self.reviews, identity: WorkloadIdentity(namespace: "bookinfo", workload: "reviews"))
        #expect(directory.labels(forIP: "10.1.0.7").contains(MetricLabelPair("workload", "reviews")))
    }

    @Test func twoProxiesOnOneIPAreNamedByTheIP() {
        let directory = ProxyDirectory()
        directory.learn(nodeID: Self.reviews, identity: WorkloadIdentity(namespace: "bookinfo", workload: "reviews-v1"))
        directory.learn(
            nodeID: "sidecar~10.1.0.7~ratings-v1-7c9d8b6f5-q8w2e.bookinfo~bookinfo.svc.cluster.local",
            identity: WorkloadIdentity(namespace: "bookinfo", workload: "ratings-v1"))
        #expect(directory.labels(forIP: "10.1.0.7") == [MetricLabelPair("instance", "10.1.0.7")])
    }

    @Test func aNodeIDWithoutAnIPTeachesNothing() {
        let directory = ProxyDirectory()
        directory.learn(nodeID: "not-an-istio-node", identity: WorkloadIdentity(namespace: "x", workload: "y"))
        #expect(directory.labels(forIP: "") == [MetricLabelPair("instance", "")])
    }
}
