import Hummingbird
import SextantAnalytics
import SextantModel
import SextantStore

/// `/api/v1/graph` and `/api/v1/signals`.
struct QueryController: Sendable {
    let database: SextantDatabase

    func addRoutes(to group: RouterGroup<some RequestContext>) {
        group.get("/api/v1/graph", use: graph)
        group.get("/api/v1/signals", use: signals)
        group.get("/api/v1/logs", use: logs)
    }

    func graph(_ request: Request, _ context: some RequestContext) async throws -> Response {
        let query = request.uri.queryParameters
        let typeText = query["graphType"].map(String.init) ?? "workload"
        guard let type = GraphType(rawValue: typeText) else {
            throw QueryError(
                "graphType '\(typeText.prefix(40))' must be one of "
                    + GraphType.allCases.map(\.rawValue).joined(separator: ", "))
        }
        let window = try QueryWindow(window: query["window"].map(String.init), end: query["end"].map(String.init))
        let aggregates =
            try await database.callAggregates(fromMicros: window.fromMicros, toMicros: window.toMicros)
            + database.connectionAggregates(fromMicros: window.fromMicros, toMicros: window.toMicros)
        var graph = ServiceGraph(
            aggregates: aggregates, graphType: type, windowSeconds: window.seconds,
            endUnixSeconds: window.endSeconds, namespace: query["namespace"].map(String.init))
        graph.addExampleTraces(
            try await database.callExamples(fromMicros: window.fromMicros, toMicros: window.toMicros))
        return try JSONResponse.make(graph)
    }

    func signals(_ request: Request, _ context: some RequestContext) async throws -> Response {
        let query = request.uri.queryParameters
        let byText = query["by"].map(String.init) ?? "service"
        guard let grouping = GoldenSignals.Grouping(rawValue: byText) else {
            throw QueryError("by '\(byText.prefix(40))' must be service or workload")
        }
        let window = try QueryWindow(window: query["window"].map(String.init), end: query["end"].map(String.init))
        let aggregates = try await database.callAggregates(fromMicros: window.fromMicros, toMicros: window.toMicros)
        // Gauges are "now": they speak for windows that end within their 5-minute freshness.
        let gaugeSamples = try await database.latestSamples(
            sinceMs: Int64(window.endSeconds * 1000) - 300_000, names: ProxyGaugeReader.names)
        let signals = GoldenSignals(
            aggregates: aggregates, by: grouping, windowSeconds: window.seconds, endUnixSeconds: window.endSeconds,
            name: query["name"].map(String.init), gauges: ProxyGaugeReader.gauges(gaugeSamples, by: grouping))
        return try JSONResponse.make(signals)
    }

    /// `GET /api/v1/logs?service&traceId&minSeverity&window&end&limit`: application log records,
    /// newest first.
    func logs(_ request: Request, _ context: some RequestContext) async throws -> Response {
        let query = request.uri.queryParameters
        let window = try QueryWindow(
            window: query["window"].map(String.init), end: query["end"].map(String.init), defaultWindow: 3600)
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
