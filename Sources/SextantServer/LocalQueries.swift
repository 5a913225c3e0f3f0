package import Foundation
package import SextantStore

/// The query API's answers read straight from a data directory, without a server: what
/// `sextant graph --data-dir` and its siblings print. The same code answers `/api/v1/…`, so the
/// two agree.
package struct LocalQueries: Sendable {
    private let queries: QueryController
    private let traces: TracesController

    package init(database: SextantDatabase) {
        queries = QueryController(database: database)
        traces = TracesController(database: database)
    }

    /// The JSON `GET path?parameters` answers on the HTTP API, for the paths the terminal uses:
    /// `/api/v1/graph`, `/api/v1/signals`, `/api/v1/diff`, `/api/v1/traces`.
    /// - Throws: `LocalQueries.Failure` naming a bad parameter or an unknown path.
    package func json(_ path: String, _ parameters: [String: String]) async throws -> Data {
        let query = QueryParameters(parameters)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        do {
            switch path {
            case "/api/v1/graph": return try encoder.encode(try await queries.graph(query))
            case "/api/v1/signals": return try encoder.encode(try await queries.signals(query))
            case "/api/v1/diff": return try encoder.encode(try await queries.diff(query))
            case "/api/v1/traces": return try encoder.encode(try await traces.search(query))
            default: throw Failure(message: "no local answer for \(path)")
            }
        } catch let error as QueryError {
            throw Failure(message: error.message)
        }
    }

    package struct Failure: Error, CustomStringConvertible {
        package var message: String
        package var description: String { message }
    }
}
