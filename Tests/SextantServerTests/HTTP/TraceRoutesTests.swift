import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import SextantFixtures
import SextantServer
import Testing

/// The captured Zipkin spans end before this (ms), and start after `fixturesStartMillis`.
private let fixturesEndMillis: Int64 = 1_795_706_853_000
private let fixturesStartMillis: Int64 = 1_795_706_850_700
private let firstTrace = "8ea82b9b855cf7e015f7aa6903dd9b74"

/// Posts every Zipkin fixture batch to the Zipkin port.
private func ingestZipkinFixtures(_ client: some TestClientProtocol) async throws {
    for file in try Fixtures.files(in: "envoy/zipkin", suffix: ".json") {
        try await client.execute(
            uri: "/api/v2/spans", method: .post, headers: [.contentType: "application/json"],
            body: ByteBuffer(bytes: try Fixtures.bytes(file))
        ) { #expect($0.status == .accepted) }
    }
}

private func get<T: Decodable>(
    _ client: some TestClientProtocol, _ uri: String, as type: T.Type, sourceLocation: SourceLocation = #_sourceLocation
) async throws -> T {
    try await client.execute(uri: uri, method: .get) { response in
        #expect(response.status == .ok, "\(uri): \(String(buffer: response.body))", sourceLocation: sourceLocation)
        return try JSONDecoder().decode(T.self, from: Data(buffer: response.body))
    }
}

private struct ZipkinSpanJSON: Decodable, Hashable {
    struct Endpoint: Decodable, Hashable {
        var serviceName: String?
        var ipv4: String?
        var port: Int?
    }

    struct Annotation: Decodable, Hashable {
        var timestamp: Int64
        var value: String
    }

    var traceId: String
    var id: String
    var parentId: String?
    var kind: String?
    var name: String?
    var timestamp: Int64?
    var duration: Int64?
    var localEndpoint: Endpoint?
    var remoteEndpoint: Endpoint?
    var annotations: [Annotation]?
    var tags: [String: String]?
}

private struct LinkJSON: Decodable, Hashable {
    var parent: String
    var child: String
    var callCount: Int
    var errorCount: Int?
}

@Suite struct TraceRoutesTests {
    private let range = "endTs=\(fixturesEndMillis)&lookback=86400000"

    @Test func zipkinNameListsComeFromStoredSpans() async throws {
        try await withCollector { collector in
            try await Application(router: collector.zipkinRouter).test(.router) { client in
                try await client.execute(uri: "/api/v2/services", method: .get) { response in
                    #expect(String(buffer: response.body) == "[]")
                    #expect(response.headers[.cacheControl] == nil)
                }
                try await ingestZipkinFixtures(client)
                try await client.execute(uri: "/api/v2/services", method: .get) { response in
                    #expect(response.status == .ok)
                    #expect(response.headers[.cacheControl] == "max-age=300, must-revalidate")
                    let names = try JSONDecoder().decode([String].self, from: Data(buffer: response.body))
                    #expect(names == ["details.default", "productpage.default", "ratings.default", "reviews.default"])
                }
                let names = try await get(client, "/api/v2/spans?serviceName=productpage.default", as: [String].self)
                #expect(
                    names == [
                        "details.default.svc.cluster.local:9080/*", "productpage.default.svc.cluster.local:9080/*",
                        "reviews.default.svc.cluster.local:9080/*",
                    ])
                #expect(try await get(client, "/api/v2/spans?serviceName=nosuch", as: [String].self) == [])
                #expect(try await get(client, "/api/v2/remoteServices?serviceName=productpage.default", as: [String].self) == [])
                for uri in ["/api/v2/spans", "/api/v2/remoteServices", "/api/v2/spans?serviceName="] {
                    try await client.execute(uri: uri, method: .get) { response in
                        #expect(response.status == .badRequest)
                        #expect(String(buffer: response.body) == "serviceName is required")
                    }
                }
                #expect(try await get(client, "/api/v2/autocompleteKeys", as: [String].self) == [])
            }
        }
    }

    @Test func zipkinTraceSearchAppliesEveryParameter() async throws {
        try await withCollector { collector in
            try await Application(router: collector.zipkinRouter).test(.router) { client in
                try await ingestZipkinFixtures(client)
                func count(_ parameters: String) async throws -> Int {
                    // The first of repeated parameters counts.
                    let traces = try await get(client, "/api/v2/traces?\(parameters)&\(range)&limit=100", as: [[ZipkinSpanJSON]].self)
                    return traces.count
                }
                // 50 traces: 33 reach ratings, 16 stop at reviews v1, 1 holds a single span.
                let all = try await get(client, "/api/v2/traces?\(range)&limit=100", as: [[ZipkinSpanJSON]].self)
                #expect(all.count == 50)
                #expect(Set(all.map(\.count)) == [1, 5, 7])
                #expect(all.allSatisfy { trace in trace.allSatisfy { $0.traceId == trace[0].traceId } })
                // Newest first.
                let starts = all.map { $0.compactMap(\.timestamp).max() ?? 0 }
                #expect(starts == starts.sorted(by: >))
                #expect(try await get(client, "/api/v2/traces?\(range)", as: [[ZipkinSpanJSON]].self).count == 10)
                #expect(try await count("limit=3") == 3)
                #expect(try await get(client, "/api/v2/traces?\(range)&limit=3", as: [[ZipkinSpanJSON]].self).map { $0[0].traceId } == all.prefix(3).map { $0[0].traceId })

                #expect(try await count("serviceName=ratings.default") == 33)
                #expect(try await count("serviceName=reviews.default&spanName=ratings.default.svc.cluster.local:9080/*") == 33)
                #expect(try await count("serviceName=reviews.default&spanName=all") == 49)
                #expect(try await count("serviceName=details.default&spanName=nosuch") == 0)
                #expect(try await count("serviceName=nosuch") == 0)
                #expect(try await count("serviceName=reviews.default&minDuration=20000") == 16)
                #expect(try await count("serviceName=reviews.default&minDuration=1&maxDuration=19999") == 49)
                #expect(try await count("serviceName=reviews.default&minDuration=60000") == 0)
                #expect(try await count("annotationQuery=error") == 3)
                #expect(try await count("annotationQuery=http.status_code%3D500") == 3)
                #expect(try await count("serviceName=ratings.default&annotationQuery=http.status_code%3D500%20and%20error") == 3)
                #expect(try await count("annotationQuery=error%20and%20http.status_code%3D200") == 0)
                #expect(try await count("serviceName=ratings.default&annotationQuery=ss") == 33)

                // Time range: nothing before the capture, part of it in its first 300 ms.
                #expect(try await count("endTs=\(fixturesStartMillis - 1000)") == 0)
                let early = try await get(
                    client, "/api/v2/traces?endTs=\(fixturesStartMillis + 300)&lookback=1000&limit=100", as: [[ZipkinSpanJSON]].self)
                #expect(!early.isEmpty && early.count < 50)
                // The default lookback is a day.
                #expect(
                    try await get(client, "/api/v2/traces?endTs=\(fixturesEndMillis)&limit=100", as: [[ZipkinSpanJSON]].self)
                        .count == 50)

                let bad = [
                    "minDuration=0": "minDuration should be positive",
                    "maxDuration=5": "minDuration is required when specifying maxDuration",
                    "minDuration=10&maxDuration=5": "maxDuration should be >= minDuration",
                    "limit=0": "limit should be greater than 0",
                    "endTs=0": "endTs should be positive",
                    "lookback=-1": "lookback should be positive",
                    "limit=ten": "limit must be an integer",
                    "annotationQuery=%3Dx": "has no key",
                ]
                for (parameters, message) in bad {
                    try await client.execute(uri: "/api/v2/traces?\(parameters)", method: .get) { response in
                        #expect(response.status == .badRequest, "\(parameters)")
                        #expect(String(buffer: response.body).contains(message), "\(parameters)")
                    }
                }
            }
        }
    }

    @Test func zipkinTraceByIDAnswersSpansOrNotFound() async throws {
        try await withCollector { collector in
            try await Application(router: collector.zipkinRouter).test(.router) { client in
                try await ingestZipkinFixtures(client)
                let trace = try await get(client, "/api/v2/trace/\(firstTrace)", as: [ZipkinSpanJSON].self)
                #expect(trace.count == 7)
                let server = try #require(trace.first { $0.kind == "SERVER" && $0.localEndpoint?.serviceName == "ratings.default" })
                #expect(server.id == "0ffd908f5d774f24")
                #expect(server.parentId == "a8edc3f4fa4991fd")
                #expect(server.timestamp == 1_795_706_850_732_164)
                #expect(server.duration == 6249)
                #expect(server.name == "ratings.default.svc.cluster.local:9080/*")
                // Envoy writes port 0 for "unknown"; Zipkin leaves it out.
                #expect(server.localEndpoint == .init(serviceName: "ratings.default", ipv4: "192.0.2.2", port: nil))
                #expect(server.annotations == [.init(timestamp: 1_795_706_850_738_521, value: "ss")])
                #expect(server.tags?["http.url"] == "http://ratings:9080/ratings/0")
                #expect(server.tags?["istio.canonical_service"] == "ratings")
                // Ids are case-insensitive.
                #expect(try await get(client, "/api/v2/trace/\(firstTrace.uppercased())", as: [ZipkinSpanJSON].self).count == 7)

                try await client.execute(uri: "/api/v2/trace/0123456789abcdef", method: .get) { response in
                    #expect(response.status == .notFound)
                    #expect(String(buffer: response.body) == "Cannot find trace 0123456789abcdef")
                }
                try await client.execute(uri: "/api/v2/trace/not-hex", method: .get) { #expect($0.status == .badRequest) }
                try await client.execute(uri: "/api/v2/trace/\(firstTrace)00", method: .get) {
                    #expect($0.status == .badRequest)
                }

                let many = try await get(
                    client, "/api/v2/traceMany?traceIds=\(firstTrace),0123456789abcdef", as: [[ZipkinSpanJSON]].self)
                #expect(many.map(\.count) == [7])
                for uri in [
                    "/api/v2/traceMany?traceIds=\(firstTrace)", "/api/v2/traceMany?traceIds=\(firstTrace),\(firstTrace)",
                    "/api/v2/traceMany", "/api/v2/traceMany?traceIds=\(firstTrace),zz",
                ] {
                    try await client.execute(uri: uri, method: .get) { #expect($0.status == .badRequest, "\(uri)") }
                }
            }
        }
    }

    @Test func lateAndDuplicateSpansJoinTheirTraceOnce() async throws {
        try await withCollector { collector in
            try await Application(router: collector.zipkinRouter).test(.router) { client in
                try await ingestZipkinFixtures(client)
                // Every batch again: nothing new is stored.
                try await ingestZipkinFixtures(client)
                #expect(try await get(client, "/api/v2/trace/\(firstTrace)", as: [ZipkinSpanJSON].self).count == 7)
                // An application span of the same trace, long after the proxies' spans.
                let late = """
                    [{"traceId":"\(firstTrace)","id":"00000000000000aa","parentId":"0ffd908f5d774f24","kind":"CLIENT",
                      "name":"SELECT ratings","timestamp":1795706850733000,"duration":1500,
                      "localEndpoint":{"serviceName":"ratings.default"},"remoteEndpoint":{"serviceName":"MySQL","port":3306}}]
                    """
                try await client.execute(
                    uri: "/api/v2/spans", method: .post, headers: [.contentType: "application/json"],
                    body: ByteBuffer(string: late)
                ) { #expect($0.status == .accepted) }
                let trace = try await get(client, "/api/v2/trace/\(firstTrace)", as: [ZipkinSpanJSON].self)
                #expect(trace.count == 8)
                let span = try #require(trace.first { $0.id == "00000000000000aa" })
                #expect(span.name == "select ratings")
                #expect(span.remoteEndpoint == .init(serviceName: "mysql", port: 3306))
                #expect(try await get(client, "/api/v2/remoteServices?serviceName=ratings.default", as: [String].self) == ["mysql"])
                let found = try await get(
                    client, "/api/v2/traces?\(range)&serviceName=ratings.default&remoteServiceName=mysql", as: [[ZipkinSpanJSON]].self)
                #expect(found.map { $0[0].traceId } == [firstTrace])
                #expect(found.first?.count == 8)
            }
        }
    }

    @Test func zipkinDependenciesCountCallsAsTheGraphDoes() async throws {
        try await withCollector { collector in
            try await Application(router: collector.zipkinRouter).test(.router) { client in
                try await ingestZipkinFixtures(client)
                let links = try await get(client, "/api/v2/dependencies?\(range)", as: [LinkJSON].self)
                #expect(
                    links == [
                        LinkJSON(parent: "productpage.default", child: "details.default", callCount: 49),
                        LinkJSON(parent: "productpage.default", child: "reviews.default", callCount: 49),
                        LinkJSON(parent: "reviews.default", child: "ratings.default", callCount: 33, errorCount: 3),
                    ])
                #expect(try await get(client, "/api/v2/dependencies?endTs=\(fixturesStartMillis - 1000)", as: [LinkJSON].self) == [])
                try await client.execute(uri: "/api/v2/dependencies", method: .get) { response in
                    #expect(response.status == .badRequest)
                    #expect(String(buffer: response.body) == "endTs is required")
                }
                try await client.execute(uri: "/api/v2/dependencies?endTs=1&lookback=0", method: .get) {
                    #expect($0.status == .badRequest)
                }
                try await client.execute(uri: "/api/v2/dependencies?endTs=9223372036854775807", method: .get) {
                    #expect($0.status == .ok)
                }
            }
        }
    }

    @Test func otlpTracesAreSearchableByServiceAndID() async throws {
        try await withCollector { collector in
            try await Application(router: collector.otlpRouter).test(.router) { client in
                for file in try Fixtures.files(in: "envoy/otlp/traces", suffix: ".pb") {
                    try await client.execute(
                        uri: "/v1/traces", method: .post, headers: [.contentType: "application/x-protobuf"],
                        body: ByteBuffer(bytes: try Fixtures.bytes(file))
                    ) { #expect($0.status == .ok) }
                }
            }
            try await Application(router: collector.zipkinRouter).test(.router) { client in
                let services = try await get(client, "/api/v2/services", as: [String].self)
                #expect(!services.isEmpty)
                var total = 0
                for service in services {
                    let traces = try await get(
                        client, "/api/v2/traces?serviceName=\(service)&endTs=9000000000000&lookback=9000000000000&limit=1000",
                        as: [[ZipkinSpanJSON]].self)
                    #expect(!traces.isEmpty, "\(service)")
                    for trace in traces {
                        #expect(trace.contains { $0.localEndpoint?.serviceName == service })
                        let byID = try await get(client, "/api/v2/trace/\(trace[0].traceId)", as: [ZipkinSpanJSON].self)
                        #expect(Set(byID) == Set(trace))
                        total += 1
                    }
                }
                #expect(total > 0)
            }
            try await Application(router: collector.apiRouter).test(.router) { client in
                let answer = try await get(client, "/api/v1/traces?window=100000d&limit=1000", as: SearchJSON.self)
                #expect(!answer.traces.isEmpty)
                let first = try #require(answer.traces.first)
                let trace = try await get(client, "/api/v1/traces/\(first.traceId)", as: TraceJSON.self)
                #expect(trace.spans.count == first.spanCount)
            }
        }
    }

    @Test func sextantTraceAPINamesReportersAndGraphEdges() async throws {
        try await withCollector { collector in
            try await Application(router: collector.zipkinRouter).test(.router) { client in
                try await ingestZipkinFixtures(client)
            }
            try await Application(router: collector.apiRouter).test(.router) { client in
                let window = "window=100000d"
                let all = try await get(client, "/api/v1/traces?\(window)&limit=1000", as: SearchJSON.self)
                #expect(all.traces.count == 50)
                #expect(try await get(client, "/api/v1/traces?\(window)", as: SearchJSON.self).traces.count == 20)
                #expect(try await get(client, "/api/v1/traces?\(window)&limit=2", as: SearchJSON.self).traces.count == 2)
                #expect(try await get(client, "/api/v1/traces?limit=1000", as: SearchJSON.self).traces.isEmpty)
                #expect(
                    try await get(client, "/api/v1/traces?\(window)&end=1795706850&limit=1000", as: SearchJSON.self)
                        .traces.isEmpty)
                let errors = try await get(client, "/api/v1/traces?\(window)&status=error", as: SearchJSON.self)
                #expect(errors.traces.count == 3)
                #expect(errors.traces.allSatisfy { $0.errorCount == 2 && $0.rootService == "productpage.default" })
                #expect(
                    try await get(client, "/api/v1/traces?\(window)&service=ratings.default&limit=1000", as: SearchJSON.self)
                        .traces.count == 33)
                #expect(
                    try await get(
                        client, "/api/v1/traces?\(window)&service=reviews.default&minDuration=20ms&limit=1000", as: SearchJSON.self
                    ).traces.count == 16)
                #expect(
                    try await get(
                        client, "/api/v1/traces?\(window)&service=reviews.default&maxDuration=19.999ms&limit=1000",
                        as: SearchJSON.self
                    ).traces.count == 49)
                #expect(
                    try await get(
                        client,
                        "/api/v1/traces?\(window)&service=productpage.default&operation=details.default.svc.cluster.local:9080/*&limit=1000",
                        as: SearchJSON.self
                    ).traces.count == 49)

                // Graph edges link to their slowest traced call and a failed one.
                let graph = try await get(client, "/api/v1/graph?\(window)", as: GraphExamplesJSON.self)
                #expect(!graph.edges.isEmpty)
                #expect(graph.edges.allSatisfy { $0.exampleTraces?.slowest != nil })
                let errorIDs = Set(errors.traces.map(\.traceId))
                let failing = graph.edges.filter { $0.exampleTraces?.error != nil }
                // The graph counts the 404 of /does-not-exist as an error, Envoy's span does not.
                #expect(Set(failing.map(\.target)) == ["workload:default:ratings-v1", "workload:default:productpage-v1"])
                #expect(
                    failing.allSatisfy {
                        $0.target == "workload:default:productpage-v1"
                            ? $0.exampleTraces?.error == "518ef18540f2f4801d7747afb5ff656f"
                            : errorIDs.contains($0.exampleTraces?.error ?? "")
                    })
                let slowest = try #require(graph.edges.first { $0.source == "unknown" }?.exampleTraces)
                #expect(all.traces.contains { $0.traceId == slowest.slowest })

                let trace = try await get(client, "/api/v1/traces/\(firstTrace)", as: TraceJSON.self)
                #expect(trace.spans.count == 7)
                let ratings = try #require(trace.spans.first { $0.spanId == "0ffd908f5d774f24" })
                #expect(ratings.kind == "server")
                #expect(ratings.reporter?.role == "destination")
                #expect(ratings.reporter?.workload == "ratings-v1")
                #expect(ratings.edge?.target == "workload:default:ratings-v1")
                #expect(ratings.edge?.source.hasPrefix("workload:default:reviews-v") == true)
                let root = try #require(trace.spans.first { $0.parentId == nil })
                #expect(root.edge?.source == "unknown")
                #expect(root.edge?.target == "workload:default:productpage-v1")

                for uri in [
                    "/api/v1/traces?limit=0", "/api/v1/traces?minDuration=soon", "/api/v1/traces?status=ok",
                    "/api/v1/traces?minDuration=2s&maxDuration=1s", "/api/v1/traces/xyz",
                    // Times whose µs do not fit Int64 (these used to crash the server).
                    "/api/v1/graph?end=100000000000000000000", "/api/v1/traces?window=99999999999999d",
                    "/api/v1/query_range?match=up&end=100000000000000000000",
                ] {
                    try await client.execute(uri: uri, method: .get) { #expect($0.status == .badRequest, "\(uri)") }
                }
                try await client.execute(uri: "/api/v1/traces/0123456789abcdef", method: .get) {
                    #expect($0.status == .notFound)
                }
            }
        }
    }
}

private struct SearchJSON: Decodable {
    struct Summary: Decodable {
        var traceId: String
        var spanCount: Int
        var errorCount: Int
        var rootService: String
    }

    var traces: [Summary]
}

private struct TraceJSON: Decodable {
    struct Span: Decodable {
        struct Reporter: Decodable {
            var role: String
            var workload: String
        }

        struct Edge: Decodable {
            var source: String
            var target: String
        }

        var spanId: String
        var parentId: String?
        var kind: String
        var reporter: Reporter?
        var edge: Edge?
    }

    var spans: [Span]
}

private struct GraphExamplesJSON: Decodable {
    struct Edge: Decodable {
        struct Examples: Decodable {
            var slowest: String?
            var error: String?
        }

        var source: String
        var target: String
        var exampleTraces: Examples?
    }

    var edges: [Edge]
}
