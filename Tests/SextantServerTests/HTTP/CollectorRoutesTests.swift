import CompressNIO
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import SextantFixtures
import SextantServer
import Testing

/// Runs a collector on a temporary database, for route tests: with its writer running, or (with
/// `writerRunning: false`) with a writer that runs only when the test starts it.
func withCollector(
    writerRunning: Bool = true, configure: (inout CollectorConfiguration) -> Void = { _ in },
    _ body: (Collector) async throws -> Void
) async throws {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sextant-test-\(UUID().uuidString)").path
    defer { try? FileManager.default.removeItem(atPath: folder) }
    var configuration = CollectorConfiguration(dataDirectory: folder)
    configuration.store.countingGraceSeconds = 0
    configure(&configuration)
    let collector = try Collector(configuration: configuration, logger: Logger.quiet)
    guard writerRunning else { return try await body(collector) }
    try await withThrowingTaskGroup(of: Void.self) { group in
        let writer = collector.writer
        group.addTask { try await writer.run() }
        try await body(collector)
        group.cancelAll()
    }
}

func accessLogURI(_ workload: String) throws -> String {
    let node = try Fixtures.nodeID(workload: workload)
    return "/api/v1/accesslogs?node=" + node.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
}

@Suite struct CollectorRoutesTests {
    @Test func accessLogUploadsBuildTheGraphAndIstioMetrics() async throws {
        try await withCollector { collector in
            try await Application(router: collector.apiRouter).test(.router) { client in
                for workload in Fixtures.workloads {
                    let body = try Fixtures.bytes("envoy/access-log/\(workload).jsonl")
                    try await client.execute(
                        uri: try accessLogURI(workload), method: .post, body: ByteBuffer(bytes: body)
                    ) { response in
                        #expect(response.status == .ok)
                        #expect(String(buffer: response.body).contains("\"rejected\":0"))
                    }
                }
                try await client.execute(uri: "/api/v1/graph?graphType=workload&window=100000d", method: .get) {
                    response in
                    #expect(response.status == .ok)
                    let graph = try JSONDecoder().decode(GraphJSON.self, from: Data(buffer: response.body))
                    let edges = Dictionary(uniqueKeysWithValues: graph.edges.map { ("\($0.source)->\($0.target)", $0) })
                    #expect(edges["unknown->workload:default:productpage-v1"]?.requests == 50)
                    #expect(edges["unknown->workload:default:productpage-v1"]?.errors == 1)
                    #expect(edges["workload:default:reviews-v3->workload:default:ratings-v1"]?.serverErrors == 3)
                    #expect(edges["workload:default:productpage-v1->workload:default:reviews-v2"]?.requests == 17)
                    #expect(graph.edges.allSatisfy { $0.sources == ["accesslog"] })
                }
                try await client.execute(uri: "/api/v1/signals?by=workload&window=100000d&name=ratings-v1", method: .get) {
                    response in
                    let text = String(buffer: response.body)
                    #expect(text.contains("\"requests\":33"))
                    #expect(text.contains("\"serverErrors\":3"))
                }
                try await client.execute(uri: "/metrics", method: .get) { response in
                    #expect(response.headers[.contentType]?.hasPrefix("text/plain; version=0.0.4") == true)
                    let text = String(buffer: response.body)
                    #expect(text.contains("# TYPE istio_requests_total counter"))
                    #expect(
                        text.contains(
                            #"istio_requests_total{reporter="destination",source_workload="reviews-v3",source_canonical_service="reviews",source_canonical_revision="v3",source_workload_namespace="default",source_principal="unknown",source_app="reviews",source_version="v3",source_cluster="unknown",destination_workload="ratings-v1",destination_workload_namespace="default",destination_principal="unknown",destination_app="ratings",destination_version="v1",destination_service="ratings.default.svc.cluster.local",destination_canonical_service="ratings",destination_canonical_revision="v1",destination_service_name="ratings",destination_service_namespace="default",destination_cluster="unknown",request_protocol="http",response_code="500",grpc_response_status="",response_flags="-",connection_security_policy="none"} 3"#
                        ))
                    #expect(text.contains(#"le="+Inf""#))
                }
                try await client.execute(
                    uri: #"/federate?match[]=istio_requests_total%7Breporter%3D%22source%22%2Cresponse_code%3D~%225..%22%7D"#,
                    method: .get
                ) { response in
                    #expect(response.status == .ok)
                    let lines = String(buffer: response.body).split(separator: "\n")
                    #expect(lines.first == "# TYPE istio_requests_total untyped")
                    #expect(lines.count == 2)
                    #expect(lines[1].contains(#"response_code="500""#) && lines[1].contains("} 3 "))
                }
            }
        }
    }

    @Test func answersBadInputWithAClearMessageAndKeepsServing() async throws {
        try await withCollector { collector in
            try await Application(router: collector.apiRouter).test(.router) { client in
                try await client.execute(uri: "/federate?match[]=%7Bjob%3D~%22.*%22%7D", method: .get) { response in
                    #expect(response.status == .badRequest)
                    #expect(String(buffer: response.body).contains("match[]"))
                }
                try await client.execute(uri: "/federate", method: .get) { #expect($0.status == .badRequest) }
                try await client.execute(uri: "/api/v1/graph?graphType=mesh", method: .get) { response in
                    #expect(response.status == .badRequest)
                    #expect(String(buffer: response.body).contains("graphType"))
                }
                try await client.execute(uri: "/api/v1/signals?window=soon", method: .get) {
                    #expect($0.status == .badRequest)
                }
                try await client.execute(
                    uri: "/api/v1/accesslogs?node=not-a-node", method: .post, body: ByteBuffer(string: "{}")
                ) { response in
                    #expect(response.status == .badRequest)
                    #expect(String(buffer: response.body).contains("not an Envoy node id"))
                }
                let lines = try Fixtures.bytes("envoy/access-log/details-v1.jsonl") + Array("garbage\n".utf8)
                try await client.execute(
                    uri: try accessLogURI("details-v1"), method: .post, body: ByteBuffer(bytes: lines)
                ) { response in
                    #expect(response.status == .badRequest)
                    let text = String(buffer: response.body)
                    #expect(text.contains("\"accepted\":49"))
                    #expect(text.contains("line 50: invalid JSON"))
                }
                try await client.execute(uri: "/readyz", method: .get) { #expect($0.status == .serviceUnavailable) }
                try await client.execute(uri: "/healthz", method: .get) { #expect($0.status == .ok) }
            }
        }
    }

    @Test func zipkinCollectorTakesGzipAndNamesRejectedSpans() async throws {
        try await withCollector { collector in
            try await Application(router: collector.zipkinRouter).test(.router) { client in
                var plain = ByteBuffer(bytes: try Fixtures.bytes("envoy/zipkin/batch-001.json"))
                let gzipped = try plain.compress(with: .gzip())
                try await client.execute(
                    uri: "/api/v2/spans", method: .post,
                    headers: [.contentType: "application/json", .contentEncoding: "gzip"], body: gzipped
                ) { #expect($0.status == .accepted) }
                try await client.execute(
                    uri: "/api/v2/spans", method: .post, headers: [.contentType: "application/json"],
                    body: ByteBuffer(string: #"[{"traceId":"abc","id":"x"}]"#)
                ) { response in
                    #expect(response.status == .badRequest)
                    #expect(String(buffer: response.body).contains("span[0]: 'id' must be 16 hex characters"))
                }
                try await client.execute(
                    uri: "/api/v2/spans", method: .post, headers: [.contentType: "application/x-thrift"],
                    body: ByteBuffer(string: "[]")
                ) { #expect($0.status == .unsupportedMediaType) }
                try await client.execute(
                    uri: "/api/v2/spans", method: .post, headers: [.contentEncoding: "gzip"],
                    body: ByteBuffer(string: "definitely not gzip")
                ) { #expect($0.status == .badRequest) }
            }
            try await Application(router: collector.apiRouter).test(.router) { client in
                try await client.execute(uri: "/metrics", method: .get) { response in
                    let text = String(buffer: response.body)
                    #expect(text.contains("sextant_stored_spans_total 5"))
                    #expect(text.contains("sextant_metric_points_dropped_total 0"))
                    #expect(text.contains(#"sextant_received_records_total{channel="zipkin",outcome="rejected"} 1"#))
                }
            }
        }
    }
}

struct GraphJSON: Decodable {
    struct Edge: Decodable {
        var source: String
        var target: String
        var requests: Int
        var errors: Int
        var serverErrors: Int
        var sources: [String]
    }

    var edges: [Edge]
}

extension Logger {
    /// Tests log warnings and errors only.
    static var quiet: Logger {
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        return logger
    }
}
