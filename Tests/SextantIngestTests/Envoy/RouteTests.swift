import SextantIngest
import SextantModel
import SextantWire
import Testing

/// Istio's direction and destination-service rule is one rule for every channel: the same call
/// is the same graph edge whichever channel reported it.
@Suite struct RouteTests {
    private let nodeID = "sidecar~10.0.0.7~productpage-v1-6b746f74dc-9stvs.default~default.svc.cluster.local"
    private let clusterName = "outbound|9080||recommendations.default.svc.cluster.local"

    /// A call Envoy answers itself with 503 UH (a service with no endpoints), as the span and the
    /// JSON log report it (with the cluster) and as ALS does (without one).
    @Test func namesAnUnansweredCallAlikeOnEveryChannel() throws {
        let zipkin = """
            [{"traceId":"5b8efff798038103d269b633813fc60c","id":"eee19b7ec3c1b174","kind":"CLIENT",
              "name":"recommendations:9080/*","timestamp":1795706850714000,"duration":1200,
              "localEndpoint":{"serviceName":"productpage.default"},
              "tags":{"node_id":"\(nodeID)","upstream_cluster":"\(clusterName)",
                      "http.url":"http://recommendations:9080/recommendations","http.status_code":"503",
                      "response_flags":"UH"}}]
            """
        let span = try #require(try ZipkinV2Decoder().decode(json: Array(zipkin.utf8)).requests.first)

        let line = """
            {"node_id":"\(nodeID)","start_time":"2026-11-26T15:27:30.714Z","method":"GET","protocol":"HTTP/1.1",\
            "response_code":503,"response_flags":"UH","authority":"recommendations:9080","upstream_cluster":"\(clusterName)"}
            """
        let logged = try #require(EnvoyAccessLogDecoder().decode(lines: Array(line.utf8)).requests.first)

        var entry = Envoy_Data_Accesslog_V3_HTTPAccessLogEntry()
        entry.commonProperties.startTime = .init(seconds: 1_795_706_850, nanos: 714_000_000)
        entry.commonProperties.responseFlags.noHealthyUpstream = true
        entry.request.authority = "recommendations:9080"
        entry.response.responseCode = .init(503)
        var message = Envoy_Service_Accesslog_V3_StreamAccessLogsMessage()
        message.httpLogs.logEntry = [entry]
        let proxy = try #require(NodeIdentity(nodeID: nodeID)).workload
        let streamed = try #require(
            try EnvoyALSDecoder().decode(protobuf: message.serializedBytes(), proxy: proxy).requests.first)

        for call in [span, logged, streamed] {
            #expect(call.reporter == .source)
            #expect(call.responseFlags == "UH")
            #expect(call.service == ServiceRef(
                host: "recommendations.default.svc.cluster.local", name: "recommendations", namespace: "default"))
        }
    }

    /// Without a cluster, a span's kind decides the side; the file and ALS entries are the caller's.
    @Test func takesTheSideFromASpansKindWhenTheClusterSaysNothing() throws {
        func request(kind: String, cluster: String?) throws -> CallReport {
            let clusterTag = cluster.map { #","upstream_cluster":"\#($0)""# } ?? ""
            let zipkin = """
                [{"traceId":"5b8efff798038103d269b633813fc60c","id":"eee19b7ec3c1b174","kind":"\(kind)",
                  "timestamp":1795706850714000,"duration":10,
                  "tags":{"node_id":"\(nodeID)","http.url":"http://details:9080/details/0"\(clusterTag)}}]
                """
            return try #require(try ZipkinV2Decoder().decode(json: Array(zipkin.utf8)).requests.first)
        }
        let server = try request(kind: "SERVER", cluster: nil)
        #expect(server.reporter == .destination)
        #expect(server.service.host == "details.default.svc.cluster.local")
        let client = try request(kind: "CLIENT", cluster: nil)
        #expect(client.reporter == .source)
        #expect(client.service.host == "details.default.svc.cluster.local")
        // Plain Envoy's own cluster names follow none of Istio's forms: the kind decides again.
        let plain = try request(kind: "SERVER", cluster: "local_service")
        #expect(plain.reporter == .destination)
        // An external host keeps its name, in no namespace.
        let line = #"{"node_id":"\#(nodeID)","start_time":"2026-11-26T15:27:30.714Z","method":"GET","protocol":"HTTP/1.1","response_code":200,"authority":"api.example.com","upstream_cluster":"PassthroughCluster"}"#
        let external = try #require(EnvoyAccessLogDecoder().decode(lines: Array(line.utf8)).requests.first)
        #expect(external.service.namespace == "unknown")
        #expect(external.reporter == .source)
    }
}
