import SextantFixtures
import SextantIngest
import SextantModel
import Testing

@Suite struct EnvoyAccessLogDecoderTests {
    @Test(arguments: Fixtures.workloads)
    func decodesEveryFixtureLineOfASidecar(workload: String) throws {
        let node = try #require(NodeIdentity(nodeID: Fixtures.nodeID(workload: workload)))
        let result = EnvoyAccessLogDecoder(defaultProxy: node.workload)
            .decode(lines: try Fixtures.bytes("envoy/access-log/\(workload).jsonl"))
        #expect(result.rejected.isEmpty, "\(result.rejected)")
        #expect(!result.requests.isEmpty)
        #expect(result.requests.allSatisfy { $0.proxy.workload == workload && $0.channel == .accessLog })
    }

    @Test func readsAnOutboundLineAsTheCallersReport() throws {
        let line = """
            {"authority":"details:9080","bytes_received":0,"bytes_sent":56,"downstream_local_address":"127.0.0.1:21101","downstream_remote_address":"127.0.0.1:48566","duration":9,"method":"GET","path":"/details/0","protocol":"HTTP/1.1","request_id":"1b159640-2d42-98dd-b1bd-7176d764c081","response_code":200,"response_flags":"-","start_time":"2026-11-26T15:27:30.714Z","trace_id":"8ea82b9b855cf7e015f7aa6903dd9b74","upstream_cluster":"outbound|9080||details.default.svc.cluster.local","upstream_host":"127.0.0.1:21206","upstream_local_address":"127.0.0.1:32904"}
            """
        let proxy = NodeIdentity.workload(pod: "productpage-v1-c2wpfmb65q-zcbrz", namespace: "default")
        let result = EnvoyAccessLogDecoder(defaultProxy: proxy).decode(lines: Array(line.utf8))
        let call = try #require(result.requests.first)
        #expect(call.reporter == .source)
        #expect(call.service.host == "details.default.svc.cluster.local")
        #expect(call.startMicros == 1_795_706_850_714_000)
        #expect(call.durationMicros == 9000)
        #expect(call.responseBytes == 56)
        #expect(call.remoteAddress == "127.0.0.1:21206")
        #expect(call.localAddress == "127.0.0.1:32904")
        #expect(call.traceID == "8ea82b9b855cf7e015f7aa6903dd9b74")
    }

    @Test func takesTheProxyFromLogShipperKeys() throws {
        let lines = """
            {"kubernetes":{"pod_name":"ratings-v1-x9jx2vb7t8-8qhjl","namespace_name":"shop","labels":{"app":"ratings","version":"v1"}},"start_time":"2026-11-26T15:27:30.714Z","method":"GET","protocol":"HTTP/1.1","response_code":"500","upstream_cluster":"inbound|9080||","authority":"ratings:9080","duration":"3"}
            {"k8s.pod.name":"web-7d8f9c6b4d-x2k9p","k8s.namespace.name":"shop","k8s.deployment.name":"web-v3","start_time":"2026-11-26T15:27:31Z","method":"GET","protocol":"HTTP/2","response_code":200,"upstream_cluster":"outbound|80||api.shop.svc.cluster.local"}
            {"node_id":"sidecar~10.0.0.9~cart-v2-5d8f7c9b6d-q2w3e.shop~shop.svc.cluster.local","start_time":"2026-11-26T15:27:31Z","method":"GET","protocol":"HTTP/1.1","response_code":0,"response_flags":"UH","authority":"api:80"}
            """
        let requests = EnvoyAccessLogDecoder().decode(lines: Array(lines.utf8)).requests
        #expect(requests.count == 3)
        #expect(requests[0].proxy.workload == "ratings-v1")
        #expect(requests[0].proxy.namespace == "shop")
        #expect(requests[0].reporter == .destination)
        #expect(requests[0].responseCode == 500)
        #expect(requests[0].service.host == "ratings.shop.svc.cluster.local")
        #expect(requests[1].proxy.workload == "web-v3")
        #expect(requests[1].proxy.version == "v3")
        #expect(requests[2].proxy.workload == "cart-v2")
        #expect(requests[2].responseFlags == "UH")
        // No cluster (Envoy answered UH itself): the authority, completed with the caller's
        // namespace, names the same service as line 2's cluster does.
        #expect(requests[2].service.host == "api.shop.svc.cluster.local")
    }

    @Test func reportsBadLinesByNumberAndKeepsTheRest() {
        let lines = """
            {"start_time":"2026-11-26T15:27:30.714Z","method":"GET","protocol":"HTTP/1.1","response_code":200}
            not json

            {"start_time":"yesterday","method":"GET"}
            {"start_time":"2026-11-26T15:27:30.714Z","method":"GET","duration":-1}
            {"method":"GET"}
            """
        let proxy = NodeIdentity.workload(pod: "web-0", namespace: "default")
        let result = EnvoyAccessLogDecoder(defaultProxy: proxy).decode(lines: Array(lines.utf8))
        #expect(result.requests.count == 1)
        let messages = result.rejected.map(\.description)
        #expect(messages.count == 4)
        #expect(messages[0].hasPrefix("line 2: invalid JSON"))
        #expect(messages[1] == "line 4: 'start_time' is not an RFC 3339 timestamp: 'yesterday'")
        #expect(messages[2] == "line 5: 'duration' must not be negative")
        #expect(messages[3] == "line 6: missing 'start_time'")
    }

    @Test func asksForAProxyIdentityWhenNoneIsGiven() {
        let line = #"{"start_time":"2026-11-26T15:27:30.714Z","method":"GET","response_code":200}"#
        let result = EnvoyAccessLogDecoder().decode(lines: Array(line.utf8))
        #expect(result.rejected.first?.message.contains("?node=") == true)
    }

    @Test func readsATCPProxyLineAsAConnection() throws {
        // Istio's JSON access log for a tcp_proxy listener: no method, no protocol, response code 0.
        let lines = """
            {"start_time":"2026-11-26T15:27:30.714Z","method":null,"path":null,"protocol":null,"response_code":0,"response_flags":"-","bytes_received":38,"bytes_sent":38,"duration":12,"upstream_cluster":"outbound|27017||mongodb.default.svc.cluster.local","upstream_host":"127.0.0.1:27018","upstream_local_address":"127.0.0.1:40112","downstream_local_address":"127.0.0.1:27017","downstream_remote_address":"127.0.0.1:52210","authority":null,"request_id":null}
            {"start_time":"2026-11-26T15:27:30.715Z","method":null,"protocol":null,"response_code":0,"bytes_received":38,"bytes_sent":38,"duration":11,"upstream_cluster":"inbound|27017||","upstream_host":"127.0.0.1:27019","downstream_local_address":"127.0.0.1:27018","downstream_remote_address":"127.0.0.1:40112"}
            """
        let ratings = NodeIdentity.workload(pod: "ratings-v1-x9jx2vb7t8-8qhjl", namespace: "default")
        let outbound = try #require(
            EnvoyAccessLogDecoder(defaultProxy: ratings).decode(lines: Array(lines.utf8).split(separator: 0x0A)[0].map { $0 })
                .connections.first)
        #expect(outbound.reporter == .source)
        #expect(outbound.proxy.workload == "ratings-v1")
        #expect(outbound.service.host == "mongodb.default.svc.cluster.local")
        #expect(outbound.receivedBytes == 38 && outbound.sentBytes == 38)
        #expect(outbound.durationMicros == 12_000)
        #expect(outbound.localAddress == "127.0.0.1:40112")
        #expect(outbound.remoteAddress == "127.0.0.1:27018")
        #expect(outbound.channel == .accessLog)

        let mongodb = NodeIdentity.workload(pod: "mongodb-v1-5d8f7c9b6d-q2w3e", namespace: "default")
        let batch = EnvoyAccessLogDecoder(defaultProxy: mongodb).decode(lines: Array(lines.utf8))
        #expect(batch.rejected.isEmpty)
        #expect(batch.requests.isEmpty)
        let inbound = try #require(batch.connections.last)
        #expect(inbound.reporter == .destination)
        #expect(inbound.service.host == "mongodb.default.svc.cluster.local")
        #expect(inbound.localAddress == "127.0.0.1:27018")
        #expect(inbound.remoteAddress == "127.0.0.1:40112")
    }
}
