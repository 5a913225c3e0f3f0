import Foundation
import Hummingbird
import SextantModel
import SextantStore

/// `/api/v1/traces` (search) and `/api/v1/traces/{id}` (one trace) in Sextant's own JSON.
struct TracesController: Sendable {
    let database: SextantDatabase

    func addRoutes(to group: RouterGroup<some RequestContext>) {
        group.get("/api/v1/traces", use: search)
        group.get("/api/v1/traces/:id", use: trace)
    }

    /// `GET /api/v1/traces?service&operation&minDuration&maxDuration&status&window&end&limit`:
    /// summaries of the traces with a span matching every criterion, newest first. Durations are
    /// Prometheus durations (`250ms`, `1.5s`).
    func search(_ request: Request, _ context: some RequestContext) async throws -> Response {
        try JSONResponse.make(try await search(QueryParameters(request)))
    }

    func search(_ query: QueryParameters) async throws -> TraceSearchAnswer {
        let window = try query.window(now: database.clock.nowSeconds, default: 3600)
        let limit = try QueryParameter.integer(query["limit"], name: "limit", default: 20, range: 1...1000)
        let minDuration = try Self.duration(query["minDuration"], name: "minDuration")
        let maxDuration = try Self.duration(query["maxDuration"], name: "maxDuration")
        if let minDuration, let maxDuration, maxDuration < minDuration {
            throw QueryError("maxDuration must not be less than minDuration")
        }
        let status = query["status"].map(String.init) ?? "all"
        guard status == "all" || status == "error" else { throw QueryError("status must be error or all") }
        let traceQuery = TraceQuery(
            service: Self.nonEmpty(query["service"]), spanName: Self.nonEmpty(query["operation"]),
            minDurationMicros: minDuration, maxDurationMicros: maxDuration, errorOnly: status == "error",
            fromMicros: window.fromMicros, toMicros: window.toMicros, limit: limit)
        let ids = try await database.traceIDs(matching: traceQuery)
        let traces = try await database.traces(ids)
        return TraceSearchAnswer(traces: traces.map(TraceSummary.init))
    }

    /// `GET /api/v1/traces/{id}`: every span of a trace, each with the proxy that reported it and
    /// the workload-graph edge its call counts on; 404 when no span of the trace is stored.
    func trace(_ request: Request, _ context: some RequestContext) async throws -> Response {
        let text = context.parameters.get("id") ?? ""
        let id: String
        do {
            id = try ZipkinQueryController.traceID(text)
        } catch {
            throw QueryError("trace id '\(text.prefix(40))' must be 1 to 32 hex digits")
        }
        let spans = try await database.spans(traceID: id)
        guard !spans.isEmpty else { throw HTTPError(.notFound, message: "no trace \(id)") }
        let calls = try await database.spanCalls(traceID: id, spans: spans)
        return try JSONResponse.make(TraceAnswer(spans: spans, calls: calls))
    }

    private static func nonEmpty(_ text: Substring?) -> String? {
        guard let text, !text.isEmpty else { return nil }
        return String(text)
    }

    private static func duration(_ text: Substring?, name: String) throws(QueryError) -> Int64? {
        guard let text else { return nil }
        guard let seconds = DurationText.seconds(String(text)), seconds >= 0, seconds < 1e9 else {
            throw QueryError("\(name) '\(text.prefix(40))' is not a duration such as 250ms or 2s")
        }
        return Int64((seconds * 1_000_000).rounded())
    }

    // MARK: - JSON

    private struct TraceAnswer: Encodable {
        var traceId: String
        var startUnixMicros: Int64
        var durationMicros: Int64
        var spans: [SpanEntry]

        init(spans: [Span], calls: [SpanCall]) {
            let summary = TraceSummary(spans)
            traceId = summary.traceId
            startUnixMicros = summary.startUnixMicros
            durationMicros = summary.durationMicros
            var byKey: [String: SpanCall] = [:]
            for call in calls {
                let key = "\(call.spanID)/\(call.reporter.label)"
                if byKey[key] == nil { byKey[key] = call }
            }
            self.spans = spans.map { span in
                // A client span is its proxy's outbound (source) report, a server span its inbound one.
                let reporter: Reporter? =
                    switch span.kind {
                    case .client: .source
                    case .server: .destination
                    default: nil
                    }
                let call = reporter.flatMap { byKey["\(span.spanID)/\($0.label)"] }
                return SpanEntry(span, call: call)
            }
        }
    }

    private struct SpanEntry: Encodable {
        struct Identity: Encodable {
            var role: String
            var namespace: String
            var workload: String
            var canonicalService: String
            var canonicalRevision: String

            init(role: Reporter, _ w: WorkloadIdentity) {
                self.role = role.label
                namespace = w.namespace
                workload = w.workload
                canonicalService = w.canonicalService
                canonicalRevision = w.canonicalRevision
            }
        }

        /// The edge of `/api/v1/graph?graphType=workload` the call counts on (node ids as there).
        struct Edge: Encodable {
            var source: String
            var target: String
            var `protocol`: String
            var responseCode: Int
        }

        var spanId: String
        var parentId: String?
        var kind: String
        var name: String
        var service: String
        var remoteService: String?
        var startUnixMicros: Int64
        var durationMicros: Int64
        var error: Bool
        var shared: Bool
        var tags: [String: String]
        var annotations: [ZipkinQueryController.ZipkinSpan.Annotation]
        var reporter: Identity?
        var edge: Edge?

        init(_ span: Span, call: SpanCall?) {
            spanId = span.spanID.hex
            parentId = span.parentID?.hex
            kind =
                switch span.kind {
                case .unspecified: "internal"
                case .client: "client"
                case .server: "server"
                case .producer: "producer"
                case .consumer: "consumer"
                }
            name = span.name
            service = span.serviceName
            remoteService = span.remoteEndpoint?.serviceName
            startUnixMicros = span.startMicros
            durationMicros = span.durationMicros
            error = span.isError
            shared = span.shared
            tags = span.tags.dictionary
            annotations = span.annotations.map { .init(timestamp: $0.timestampMicros, value: $0.value) }
            if let call {
                reporter = Identity(role: call.reporter, call.proxy)
                let source = call.sourceWorkload
                let target: String
                if let d = call.destinationWorkload, d.isKnown {
                    target = "workload:\(d.namespace):\(d.workload)"
                } else {
                    target = "service:\(call.service.host)"
                }
                edge = Edge(
                    source: source.isKnown ? "workload:\(source.namespace):\(source.workload)" : "unknown",
                    target: target, protocol: call.requestProtocol.label, responseCode: call.responseCode)
            }
        }
    }
}

/// `/api/v1/traces`: the traces a search found, newest first.
package struct TraceSearchAnswer: Codable, Sendable {
    package var traces: [TraceSummary]
}

/// One trace found by a search.
package struct TraceSummary: Codable, Sendable {
    package var traceId: String
    package var startUnixMicros: Int64
    package var durationMicros: Int64
    package var rootService: String
    package var rootName: String
    package var spanCount: Int
    package var errorCount: Int
    package var services: [String]

    init(_ spans: [Span]) {
        let start = spans.map(\.startMicros).min() ?? 0
        let end = spans.map { $0.startMicros + $0.durationMicros }.max() ?? start
        let ids = Set(spans.map(\.spanID))
        // The root: no parent, else the earliest span whose parent is missing.
        let root =
            spans.first { $0.parentID == nil }
            ?? spans.first { $0.parentID.map { !ids.contains($0) } ?? true } ?? spans[0]
        traceId = spans[0].traceID.hex
        startUnixMicros = start
        durationMicros = end - start
        rootService = root.serviceName
        rootName = root.name
        spanCount = spans.count
        errorCount = spans.filter(\.isError).count
        services = Set(spans.map(\.serviceName)).sorted()
    }
}
