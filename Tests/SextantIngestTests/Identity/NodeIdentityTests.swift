import SextantIngest
import SextantModel
import Testing

@Suite struct NodeIdentityTests {
    @Test func parsesIstioSidecarNodeID() throws {
        let node = try #require(
            NodeIdentity(nodeID: "sidecar~127.0.0.1~reviews-v2-pjwm7fblnq-bnk2b.default~default.svc.cluster.local"))
        #expect(node.type == "sidecar")
        #expect(node.ip == "127.0.0.1")
        #expect(node.pod == "reviews-v2-pjwm7fblnq-bnk2b")
        #expect(node.namespace == "default")
        #expect(node.workload.workload == "reviews-v2")
        #expect(node.workload.app == "reviews")
        #expect(node.workload.version == "v2")
        #expect(node.workload.canonicalService == "reviews")
        #expect(node.workload.canonicalRevision == "v2")
    }

    @Test func rejectsNodeIDsWithoutFourParts() {
        #expect(NodeIdentity(nodeID: "productpage") == nil)
        #expect(NodeIdentity(nodeID: "sidecar~1.2.3.4~pod.ns") == nil)
        #expect(NodeIdentity(nodeID: "sidecar~1.2.3.4~~ns.svc.cluster.local") == nil)
    }

    @Test(arguments: [
        ("productpage-v1-c2wpfmb65q-zcbrz", "productpage-v1"),
        ("web-0", "web"),
        ("node-agent-x7k2p", "node-agent"),
        ("standalone", "standalone"),
        ("istio-ingressgateway-7d6c9b8f5d-abcde", "istio-ingressgateway"),
    ])
    func recoversTheOwningWorkloadFromAPodName(pod: String, workload: String) {
        #expect(NodeIdentity.ownerName(pod: pod) == workload)
    }

    @Test func leavesAppAndVersionUnknownWithoutAVersionSuffix() {
        let identity = NodeIdentity.workload(pod: "gateway-5d8f7c9b6d-q2w3e", namespace: "istio-system")
        #expect(identity.workload == "gateway")
        #expect(identity.app == "gateway")
        #expect(identity.version == "unknown")
        #expect(identity.canonicalRevision == "latest")
    }
}

@Suite struct EnvoyClusterTests {
    @Test func parsesOutboundClusterIntoItsService() throws {
        let cluster = try #require(EnvoyCluster("outbound|9080|v1|reviews.default.svc.cluster.local"))
        #expect(cluster.direction == .outbound)
        #expect(cluster.port == 9080)
        #expect(cluster.subset == "v1")
        #expect(cluster.service == ServiceRef(host: "reviews.default.svc.cluster.local", name: "reviews", namespace: "default"))
    }

    @Test func parsesInboundAndSNIForms() throws {
        #expect(EnvoyCluster("inbound|9080||")?.direction == .inbound)
        let sni = try #require(EnvoyCluster("outbound_.9080_._.ratings.prod.svc.cluster.local"))
        #expect(sni.subset == "")
        #expect(sni.service?.namespace == "prod")
    }

    @Test func namesSpecialClustersAsTheirOwnService() {
        #expect(EnvoyCluster("PassthroughCluster")?.service?.name == "PassthroughCluster")
        #expect(EnvoyCluster("BlackHoleCluster")?.direction == .special)
    }

    @Test func rejectsNamesOutsideIstiosForms() {
        #expect(EnvoyCluster("zipkin") == nil)
        #expect(EnvoyCluster("outbound|9080|reviews") == nil)
    }

    @Test func completesShortHostsWithTheProxyNamespace() {
        #expect(ServiceHost.service(host: "details:9080", defaultNamespace: "default").host
            == "details.default.svc.cluster.local")
        #expect(ServiceHost.service(host: "details.default:9080", defaultNamespace: "default").name == "details")
        #expect(ServiceHost.service(host: "10.0.0.7:80", defaultNamespace: "default").namespace == "unknown")
        #expect(ServiceHost.service(host: "httpbin.org", defaultNamespace: "default").host == "httpbin.org")
    }
}
