import SextantFixtures
import SextantIngest
import SextantModel
import Testing

/// The byte-level JSON decoders against the Foundation ones they replace: the same records from
/// every fixture and from hand-made bad input.
@Suite struct DifferentialDecoderTests {
    static let zipkinCases: [String] = [
        #"[{"traceId":"a1","id":"00000000000000b2","timestamp":1795706850714252,"duration":5,"name":"GET"},{"id":"00000000000000b3","timestamp":1795706850714252},{"traceId":"zz","id":"00000000000000b4","timestamp":1795706850714252},{"traceId":"a1","id":"00000000000000b5","timestamp":1795706850714252,"duration":-3},{"traceId":"a1","id":"00000000000000b7","timestamp":1795706850714252,"kind":"SIDEWAYS"}]"#,
        #"[{"traceId":"A1B2","id":"B2","parentId":"","timestamp":17957068507,"kind":"client","localEndpoint":{"serviceName":"Web","port":0},"remoteEndpoint":null,"tags":{"n":3,"f":1.5,"b":true,"s":"x\u00e9\n"},"annotations":[{"timestamp":17957068508,"value":"cs"}],"shared":true,"debug":false}]"#,
        #"[{"traceId":"a1","id":"b2","timestamp":17957068507,"tags":{"x":null}},{"traceId":"a1","id":"b3","timestamp":17957068507,"annotations":[{"value":"v"}]},{"traceId":"a1","id":"b4","parentId":"b4","timestamp":17957068507},{"traceId":"a1","id":"b5","parentId":"qq","timestamp":17957068507},{"traceId":"a1","id":"b6","timestamp":0},{"traceId":"a1","id":"b7","annotations":[{"timestamp":5,"value":"a"},{"timestamp":3,"value":"b"}]}]"#,
        "  [ ]  ",
    ]

    @Test func zipkinDecodersAgreeOnEveryFixtureAndCase() throws {
        var bodies = try Fixtures.files(in: "envoy/zipkin", suffix: ".json").map { try Fixtures.bytes($0) }
        bodies += Self.zipkinCases.map { Array($0.utf8) }
        for body in bodies {
            let old = try LegacyZipkinV2Decoder().decode(json: body)
            let new = try ZipkinV2Decoder().decode(json: body)
            #expect(new.spans == old.spans)
            #expect(new.requests == old.requests)
            #expect(new.rejected.map(\.location) == old.rejected.map(\.location))
            #expect(new.rejected.map(\.reason) == old.rejected.map(\.reason))
        }
    }

    @Test func zipkinDecodersRefuseTheSameBodies() {
        for body in ["{\"traceId\":1}", "[{\"traceId\":", "[1,", "[] x", "[{\"a\":tru}]"] {
            #expect(throws: DecodeError.self) { try LegacyZipkinV2Decoder().decode(json: Array(body.utf8)) }
            #expect(throws: DecodeError.self) { try ZipkinV2Decoder().decode(json: Array(body.utf8)) }
        }
    }

    static let accessLogCases = """
        {"start_time":"2026-11-26T15:27:30.714Z","method":"GET","protocol":"HTTP/1.1","response_code":200}
        not json

        {"start_time":"yesterday","method":"GET"}
        {"start_time":"2026-11-26T15:27:30.714Z","method":"GET","duration":-1}
        {"method":"GET"}
        {"start_time":"2026-11-26T15:27:30.714Z","method":"GET","response_code":"503","duration":"7","response_flags":"UH","authority":"recommendations:9080","grpc_status":14,"trace_id":"ABC"}
        {"start_time":"2026-11-26T15:27:30.714+02:00","method":"POST","upstream_cluster":"inbound|9080||","authority":"web.shop","bytes_received":1.0e3}
        {"kubernetes":{"pod_name":"ratings-v1-x9jx2vb7t8-8qhjl","namespace_name":"shop","labels":{"app":"ratings","version":"v1"}},"start_time":"2026-11-26T15:27:30.714Z","method":"GET","protocol":"HTTP/1.1","response_code":"500","upstream_cluster":"inbound|9080||","authority":"ratings:9080","duration":"3"}
        {"k8s.pod.name":"web-7d8f9c6b4d-x2k9p","k8s.namespace.name":"shop","k8s.deployment.name":"web-v3","start_time":"2026-11-26T15:27:31Z","method":"GET","protocol":"HTTP/2","response_code":200,"upstream_cluster":"outbound|80||api.shop.svc.cluster.local"}
        {"node_id":"sidecar~10.0.0.9~cart-v2-5d8f7c9b6d-q2w3e.shop~shop.svc.cluster.local","start_time":"2026-11-26T15:27:31Z","method":"GET","protocol":"HTTP/1.1","response_code":0,"response_flags":"UH","authority":"api:80","extra":{"a":[1,2,{"b":null}]}}
        {"start_time":"2026-11-26T15:27:30.714Z","method":"GET","response_code":1000}
        [1,2]
        """

    @Test func accessLogDecodersAgreeOnEveryFixtureAndCase() throws {
        var uploads: [(WorkloadIdentity?, [UInt8])] = []
        for workload in Fixtures.workloads {
            let node = try #require(NodeIdentity(nodeID: Fixtures.nodeID(workload: workload)))
            uploads.append((node.workload, try Fixtures.bytes("envoy/access-log/\(workload).jsonl")))
        }
        uploads.append((NodeIdentity.workload(pod: "web-0", namespace: "default"), Array(Self.accessLogCases.utf8)))
        uploads.append((nil, Array(Self.accessLogCases.utf8)))
        for (proxy, body) in uploads {
            let old = LegacyEnvoyAccessLogDecoder(defaultProxy: proxy).decode(lines: body)
            let new = EnvoyAccessLogDecoder(defaultProxy: proxy).decode(lines: body)
            #expect(new.requests == old.batch.requests)
            #expect(new.connections.count == old.skippedTCP)
            #expect(new.rejected.map(\.location) == old.batch.rejected.map(\.location))
            // Rule violations read the same; syntax and shape errors are worded by each JSON reader.
            for (n, o) in zip(new.rejected, old.batch.rejected)
            where !o.message.hasPrefix("invalid JSON") && !o.message.contains(" should be ") {
                #expect(n == o)
            }
        }
    }
}
