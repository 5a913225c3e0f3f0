import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import SextantFixtures
import SextantServer
import Testing

/// `/api/v1/signals/range` and `/api/v1/diff` over Bookinfo's access logs.
@Suite struct GraphRangeRoutesTests {
    struct RangeJSON: Decodable {
        struct Point: Decodable {
            var requests: Int
            var errors: Int
        }
        struct Total: Decodable {
            var requests: Int
            var errors: Int
            var serverErrors: Int
            var byCode: [String: Int]
            var sources: [String]
        }
        var stepSeconds: Double
        var points: [Point]
        var total: Total
    }

    struct DiffJSON: Decodable {
        struct Change: Decodable { var kind: String }
        struct Edge: Decodable {
            var source: String
            var target: String
            var changes: [Change]
        }
        var edges: [Edge]
    }

    func upload(_ client: some TestClientProtocol) async throws {
        for workload in Fixtures.workloads {
            let body = try Fixtures.bytes("envoy/access-log/\(workload).jsonl")
            try await client.execute(uri: try accessLogURI(workload), method: .post, body: ByteBuffer(bytes: body)) {
                #expect($0.status == .ok)
            }
        }
    }

    func decode<T: Decodable>(_ type: T.Type, _ client: some TestClientProtocol, _ uri: String) async throws -> T {
        try await client.execute(uri: uri, method: .get) { response in
            #expect(response.status == .ok, "\(uri): \(String(buffer: response.body))")
            return try JSONDecoder().decode(T.self, from: Data(buffer: response.body))
        }
    }

    @Test func anEdgesRangeAddsUpToItsEdgeOnTheGraph() async throws {
        try await withCollector { collector in
            try await Application(router: collector.apiRouter).test(.router) { client in
                try await upload(client)
                let end = Int(Date().timeIntervalSince1970)
                let graph = try await decode(GraphJSON.self, client, "/api/v1/graph?window=100000d&end=\(end)")
                let source = "workload:default:reviews-v3"
                let target = "workload:default:ratings-v1"
                let edge = try #require(graph.edges.first { $0.source == source && $0.target == target })
                let range = try await decode(
                    RangeJSON.self, client,
                    "/api/v1/signals/range?source=\(source)&target=\(target)&window=100000d&end=\(end)&step=2000d")
                #expect(range.points.count == 50)
                #expect(range.stepSeconds == 2000 * 86400)
                #expect(range.total.requests == edge.requests)
                #expect(range.total.errors == edge.errors)
                #expect(range.total.serverErrors == edge.serverErrors)
                #expect(range.points.reduce(0) { $0 + $1.requests } == edge.requests)
                #expect(range.total.sources == ["accesslog"])
                let node = try await decode(
                    RangeJSON.self, client, "/api/v1/signals/range?node=\(target)&window=100000d&end=\(end)")
                let inbound = graph.edges.filter { $0.target == target }.reduce(0) { $0 + $1.requests }
                #expect(node.total.requests == inbound)
                #expect(node.points.count == 60)
            }
        }
    }

    @Test func theDiffAgainstAnEmptyBaselineListsEveryEdgeAsNew() async throws {
        try await withCollector { collector in
            try await Application(router: collector.apiRouter).test(.router) { client in
                try await upload(client)
                let graph = try await decode(GraphJSON.self, client, "/api/v1/graph?window=3000d")
                let diff = try await decode(DiffJSON.self, client, "/api/v1/diff?window=3000d&baseline=previous")
                #expect(Set(diff.edges.map { "\($0.source)->\($0.target)" }) == Set(graph.edges.map { "\($0.source)->\($0.target)" }))
                #expect(diff.edges.allSatisfy { $0.changes.contains { $0.kind == "appeared" } })
                // The edges with errors rank first.
                let first = try #require(diff.edges.first)
                #expect(first.changes.contains { $0.kind == "newErrors" })
            }
        }
    }

    @Test func badParametersAreNamed() async throws {
        try await withCollector { collector in
            try await Application(router: collector.apiRouter).test(.router) { client in
                for (uri, words) in [
                    ("/api/v1/signals/range?window=1h", "node, or source and target"),
                    ("/api/v1/signals/range?node=x&direction=up", "direction 'up'"),
                    ("/api/v1/signals/range?node=x&window=1d&step=1s", "more than 1000 points"),
                    ("/api/v1/signals/range?node=x&step=soon", "step 'soon'"),
                    ("/api/v1/signals/range?source=a&target=b&protocol=udp", "protocol 'udp'"),
                    ("/api/v1/diff?baseline=lastweek", "baseline 'lastweek'"),
                    ("/api/v1/diff?baselineEnd=yesterday", "baselineEnd 'yesterday'"),
                    ("/api/v1/diff?graphType=pods", "graphType 'pods'"),
                ] {
                    try await client.execute(uri: uri, method: .get) { response in
                        #expect(response.status == .badRequest, "\(uri)")
                        #expect(String(buffer: response.body).contains(words), "\(uri): \(String(buffer: response.body))")
                    }
                }
            }
        }
    }
}
