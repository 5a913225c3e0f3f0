import Hummingbird
import Logging
import SextantAnalytics
import SextantStore

/// `/api/v1/graph` and `/api/v1/signals`.
struct QueryController: Sendable {
    let database: SextantDatabase
    let logger: Logger

    func graph(_ request: Request, _ context: some RequestContext) async throws -> Response {
        do {
            let query = request.uri.queryParameters
            let typeText = query["graphType"].map(String.init) ?? "workload"
            guard let type = GraphType(rawValue: typeText) else {
                throw QueryError(
                    "graphType '\(typeText.prefix(40))' must be one of "
                        + GraphType.allCases.map(\.rawValue).joined(separator: ", "))
            }
            let window = try QueryWindow(window: query["window"].map(String.init), end: query["end"].map(String.init))
            let aggregates = try await database.callAggregates(fromMicros: window.fromMicros, toMicros: window.toMicros)
            let graph = ServiceGraph(
                aggregates: aggregates, graphType: type, windowSeconds: window.seconds,
                endUnixSeconds: window.endSeconds, namespace: query["namespace"].map(String.init))
            return try JSONResponse.make(graph)
        } catch {
            throw HTTPErrorMapping.httpError(error, logger: logger)
        }
    }

    func signals(_ request: Request, _ context: some RequestContext) async throws -> Response {
        do {
            let query = request.uri.queryParameters
            let byText = query["by"].map(String.init) ?? "service"
            guard let grouping = GoldenSignals.Grouping(rawValue: byText) else {
                throw QueryError("by '\(byText.prefix(40))' must be service or workload")
            }
            let window = try QueryWindow(window: query["window"].map(String.init), end: query["end"].map(String.init))
            let aggregates = try await database.callAggregates(fromMicros: window.fromMicros, toMicros: window.toMicros)
            let signals = GoldenSignals(
                aggregates: aggregates, by: grouping, windowSeconds: window.seconds, endUnixSeconds: window.endSeconds,
                name: query["name"].map(String.init))
            return try JSONResponse.make(signals)
        } catch {
            throw HTTPErrorMapping.httpError(error, logger: logger)
        }
    }
}
