import Hummingbird
import SextantAnalytics
import SextantModel
import SextantStore

/// `/api/v1/graph`, `/api/v1/signals`, `/api/v1/signals/range`, `/api/v1/diff`, `/api/v1/logs`.
struct QueryController: Sendable {
    let database: SextantDatabase
    /// Where the graph, signals and diff read calls: the store, or a Prometheus API (query mode).
    let calls: any CallSource

    init(database: SextantDatabase, calls: (any CallSource)? = nil) {
        self.database = database
        self.calls = calls ?? LocalCalls(database: database)
    }

    func addRoutes(to group: RouterGroup<some RequestContext>) {
        group.get("/api/v1/graph", use: graph)
        group.get("/api/v1/signals", use: signals)
        group.get("/api/v1/signals/range", use: signalsRange)
        group.get("/api/v1/diff", use: diff)
        group.get("/api/v1/logs", use: logs)
    }

    func graph(_ request: Request, _ context: some RequestContext) async throws -> Response {
        try JSONResponse.make(Sourced(answer: try await graph(QueryParameters(request)), source: calls.answerSource))
    }

    func graph(_ query: QueryParameters) async throws -> ServiceGraph {
        let type = try Self.graphType(query["graphType"])
        let window = try query.window(now: database.clock.nowSeconds)
        let aggregates = try await calls.aggregates(from: window.endSeconds - window.seconds, to: window.endSeconds)
        var graph = ServiceGraph(
            aggregates: aggregates, graphType: type, windowSeconds: window.seconds,
            endUnixSeconds: window.endSeconds, namespace: query["namespace"].map(String.init))
        graph.addExampleTraces(
            try await database.callExamples(fromMicros: window.fromMicros, toMicros: window.toMicros))
        return graph
    }

    func signals(_ request: Request, _ context: some RequestContext) async throws -> Response {
        try JSONResponse.make(try await sourcedSignals(QueryParameters(request)))
    }

    func signals(_ query: QueryParameters) async throws -> GoldenSignals {
        try await sourcedSignals(query).answer
    }

    /// The signals, and where their numbers came from: in query mode, p50/p90/p99 come from
    /// Sextant's exact-quantile gauges where one Sextant's gauges cover an item's window.
    func sourcedSignals(_ query: QueryParameters) async throws -> Sourced<GoldenSignals> {
        let byText = query["by"].map(String.init) ?? "service"
        guard let grouping = GoldenSignals.Grouping(rawValue: byText) else {
            throw QueryError("by '\(byText.prefix(40))' must be service or workload")
        }
        let window = try query.window(now: database.clock.nowSeconds)
        let aggregates = try await calls.aggregates(from: window.endSeconds - window.seconds, to: window.endSeconds)
            .filter { $0.requestProtocol != .tcp }
        // Gauges are "now": they speak for windows that end within their 5-minute freshness.
        let gaugeSamples = try await database.latestSamples(
            sinceMs: Int64(window.endSeconds * 1000) - 300_000, names: ProxyGaugeReader.names)
        var signals = GoldenSignals(
            aggregates: aggregates, by: grouping, windowSeconds: window.seconds, endUnixSeconds: window.endSeconds,
            name: query["name"].map(String.init), gauges: ProxyGaugeReader.gauges(gaugeSamples, by: grouping))
        var source = calls.answerSource
        if let prometheus = calls as? PrometheusCalls {
            let exact = try await prometheus.exactLatency(
                &signals.items, by: grouping, windowSeconds: window.seconds, endSeconds: window.endSeconds,
                now: database.clock.nowSeconds)
            if !exact.isEmpty {
                source?.latency = exact.count == signals.items.count ? "exact" : "mixed"
                source?.note += "; p50, p90 and p99 of \(exact.sorted().joined(separator: ", ")) are exact "
                    + "(sextant_request_duration_quantile_seconds), p95 of them interpolated"
            }
        }
        return Sourced(answer: signals, source: source)
    }

    /// `GET /api/v1/signals/range?graphType&node[&direction]|source&target[&protocol]&window&end&step`:
    /// one node's or edge's signals step by step, as the graph counts them.
    func signalsRange(_ request: Request, _ context: some RequestContext) async throws -> Response {
        try JSONResponse.make(Sourced(answer: try await signalsRange(QueryParameters(request)), source: calls.answerSource))
    }

    func signalsRange(_ query: QueryParameters) async throws -> SignalsRange {
        let type = try Self.graphType(query["graphType"])
        let window = try query.window(now: database.clock.nowSeconds, default: 3600)
        let subject: GraphSubject
        if let node = query["node"].map(String.init) {
            let direction = query["direction"].map(String.init) ?? "inbound"
            guard direction == "inbound" || direction == "outbound" else {
                throw QueryError("direction '\(direction.prefix(40))' must be inbound or outbound")
            }
            subject = .node(id: node, outbound: direction == "outbound")
        } else if let source = query["source"].map(String.init), let target = query["target"].map(String.init) {
            let proto = query["protocol"].map(String.init)
            if let proto, !["http", "grpc", "tcp"].contains(proto) {
                throw QueryError("protocol '\(proto.prefix(40))' must be http, grpc or tcp")
            }
            subject = .edge(source: source, target: target, protocol: proto)
        } else {
            throw QueryError("give node, or source and target: the graph's node ids")
        }
        let stepSeconds: Double
        if let text = query["step"].map(String.init) {
            guard let s = DurationText.seconds(text), s >= 1 else {
                throw QueryError("step '\(text.prefix(40))' is not a duration of at least 1s, such as 30s or 1m")
            }
            stepSeconds = s
        } else {
            stepSeconds = max(1, (window.seconds / 60).rounded(.up))
        }
        guard window.seconds / stepSeconds <= Double(Self.maxPoints) else {
            throw QueryError("window / step gives more than \(Self.maxPoints) points: take a longer step")
        }
        let bounds = SignalsRange.steps(windowSeconds: window.seconds, endSeconds: window.endSeconds, stepSeconds: stepSeconds)
        let aggregates = try await calls.aggregates(bounds)
        let steps = zip(bounds, aggregates).map { bound, aggregates in
            SignalsRange.Step(fromSeconds: bound.from, toSeconds: bound.to, aggregates: aggregates)
        }
        return SignalsRange(steps: steps, subject: subject, graphType: type, stepSeconds: stepSeconds)
    }

    /// The most points one `/api/v1/signals/range` answers.
    static let maxPoints = 1_000

    /// `GET /api/v1/diff?graphType&window&end&baseline|baselineEnd&minRequests&namespace`: what got
    /// worse on each edge and node since the baseline window, worst first.
    func diff(_ request: Request, _ context: some RequestContext) async throws -> Response {
        try JSONResponse.make(Sourced(answer: try await diff(QueryParameters(request)), source: calls.answerSource))
    }

    func diff(_ query: QueryParameters) async throws -> GraphDiff {
        let type = try Self.graphType(query["graphType"])
        let window = try query.window(now: database.clock.nowSeconds, default: 900)
        let baselineEnd: Double
        if let text = query["baselineEnd"].map(String.init) {
            guard let end = Double(text), end.isFinite, end > window.seconds, end <= QueryWindow.maxSeconds else {
                throw QueryError("baselineEnd '\(text.prefix(40))' is not a Unix time in seconds")
            }
            baselineEnd = end
        } else {
            switch query["baseline"].map(String.init) ?? "previous" {
            case "previous": baselineEnd = window.endSeconds - window.seconds
            case "day": baselineEnd = window.endSeconds - 86_400
            case let other: throw QueryError("baseline '\(other.prefix(40))' must be previous or day (or give baselineEnd)")
            }
        }
        let minRequests = try QueryParameter.integer(query["minRequests"], name: "minRequests", default: 20, range: 1...1_000_000)
        let baseline = try QueryWindow(
            window: query["window"].map(String.init), end: String(baselineEnd), now: database.clock.nowSeconds,
            defaultWindow: 900)
        let diff = GraphDiff(
            current: try await calls.aggregates(from: window.endSeconds - window.seconds, to: window.endSeconds),
            baseline: try await calls.aggregates(from: baseline.endSeconds - baseline.seconds, to: baseline.endSeconds),
            graphType: type, windowSeconds: window.seconds, endUnixSeconds: window.endSeconds,
            baselineEndUnixSeconds: baselineEnd, minRequests: minRequests, namespace: query["namespace"].map(String.init))
        return diff
    }

    private static func graphType(_ parameter: Substring?) throws(QueryError) -> GraphType {
        let text = parameter.map(String.init) ?? "workload"
        guard let type = GraphType(rawValue: text) else {
            throw QueryError(
                "graphType '\(text.prefix(40))' must be one of " + GraphType.allCases.map(\.rawValue).joined(separator: ", "))
        }
        return type
    }

    /// `GET /api/v1/logs?service&traceId&minSeverity&window&end&limit`: application log records,
    /// newest first.
    func logs(_ request: Request, _ context: some RequestContext) async throws -> Response {
        let query = QueryParameters(request)
        let window = try query.window(now: database.clock.nowSeconds, default: 3600)
        let limit = try QueryParameter.integer(query["limit"], name: "limit", default: 100, range: 1...10_000)
        let severity = try QueryParameter.integer(query["minSeverity"], name: "minSeverity", default: 0, range: 0...24)
        let records = try await database.logs(
            service: query["service"].map(String.init), traceID: query["traceId"].map { String($0).lowercased() },
            minSeverity: severity, fromMicros: window.fromMicros, toMicros: window.toMicros, limit: limit)
        return try JSONResponse.make(LogsAnswer(logs: records.map(LogsAnswer.Entry.init)))
    }

    private struct LogsAnswer: Encodable {
        struct Entry: Encodable {
            var timeUnixMicros: Int64
            var service: String
            var severityNumber: Int
            var severityText: String
            var body: String
            var traceId: String?
            var spanId: String?
            var attributes: [String: String]

            init(_ r: LogRecord) {
                timeUnixMicros = r.timeMicros
                service = r.service
                severityNumber = r.severityNumber
                severityText = r.severityText
                body = r.body
                traceId = r.traceID
                spanId = r.spanID
                attributes = r.attributes
            }
        }

        var logs: [Entry]
    }
}

/// An answer with where its numbers came from (`source`), when not from the local store.
struct Sourced<Answer: Encodable>: Encodable {
    var answer: Answer
    var source: AnswerSource?

    private enum Key: String, CodingKey { case source }

    func encode(to encoder: any Encoder) throws {
        try answer.encode(to: encoder)
        if let source {
            var container = encoder.container(keyedBy: Key.self)
            try container.encode(source, forKey: .source)
        }
    }
}
