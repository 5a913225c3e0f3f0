import ArgumentParser
import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import SextantAnalytics
import SextantServer
import SextantStore

/// Where the terminal commands read the mesh: a running server's API, or a data directory.
struct MeshOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "A running Sextant's HTTP API, e.g. http://127.0.0.1:9876 (env SEXTANT_SERVER). Without it the "
                + "commands read --data-dir directly.",
            valueName: "url"))
    var server: String?

    @Option(help: ArgumentHelp("File holding the server's query token (its --query-token-file).", valueName: "path"))
    var tokenFile: String?

    @Option(
        name: .customLong("data-dir"),
        help: ArgumentHelp("Folder of the database, read when no --server is given (env SEXTANT_DATA_DIR).", valueName: "dir"))
    var dataDirectory: String = ProcessInfo.processInfo.environment["SEXTANT_DATA_DIR"] ?? "./sextant-data"

    @Option(help: ArgumentHelp("How far back to look: a Prometheus duration such as 5m, 1h or 7d.", valueName: "duration"))
    var window = "15m"

    @Option(help: ArgumentHelp("End of the window, Unix seconds (default now).", valueName: "seconds"))
    var end: Double?

    @Flag(name: .customLong("no-color"), help: "No colour, even on a terminal (NO_COLOR does the same).")
    var noColour = false

    /// Colour only on a terminal, unless told not to.
    var colour: Bool {
        !noColour && isatty(STDOUT_FILENO) == 1 && ProcessInfo.processInfo.environment["NO_COLOR"] == nil
    }

    /// The window's parameters, for every query.
    var windowParameters: [String: String] {
        var parameters = ["window": window]
        if let end { parameters["end"] = String(end) }
        return parameters
    }

    /// The JSON answer of `GET path?parameters` from the server, or computed from the data directory.
    func fetch(_ path: String, _ parameters: [String: String]) async throws -> Data {
        if let server = server ?? ProcessInfo.processInfo.environment["SEXTANT_SERVER"] {
            return try await fetch(server: server, path, parameters)
        }
        guard FileManager.default.fileExists(atPath: (dataDirectory as NSString).appendingPathComponent("sextant.db")) else {
            throw ValidationError("no database in \(dataDirectory): give --data-dir, or --server for a running Sextant")
        }
        var logger = Logger(label: "sextant")
        logger.logLevel = .error
        let database = try SextantDatabase(configuration: .init(directory: dataDirectory), logger: logger)
        do {
            return try await LocalQueries(database: database).json(path, parameters)
        } catch let failure as LocalQueries.Failure {
            throw ValidationError(failure.message)
        }
    }

    private func fetch(server: String, _ path: String, _ parameters: [String: String]) async throws -> Data {
        var components = URLComponents(string: server.hasSuffix("/") ? String(server.dropLast()) + path : server + path)
        components?.queryItems = parameters.sorted { $0.key < $1.key }.map { URLQueryItem(name: $0.key, value: $0.value) }
        guard let url = components?.url?.absoluteString, components?.scheme != nil else {
            throw ValidationError("--server '\(server)' is not a URL such as http://127.0.0.1:9876")
        }
        var request = HTTPClientRequest(url: url)
        if let tokenFile {
            guard let token = try? String(contentsOfFile: tokenFile, encoding: .utf8) else {
                throw ValidationError("cannot read --token-file \(tokenFile)")
            }
            request.headers.add(name: "Authorization", value: "Bearer " + token.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(60))
        let body = try await response.body.collect(upTo: 256 << 20)
        guard response.status == .ok else {
            struct Failure: Decodable {
                struct Message: Decodable { var message: String }
                var error: Message
            }
            let message = (try? JSONDecoder().decode(Failure.self, from: Data(buffer: body)))?.error.message
                ?? String(buffer: body).prefix(300).description
            throw ValidationError("\(server) answered \(response.status.code): \(message)")
        }
        return Data(buffer: body)
    }

    func decode<T: Decodable>(_ type: T.Type, _ path: String, _ parameters: [String: String]) async throws -> (T, Data) {
        let data = try await fetch(path, windowParameters.merging(parameters) { $1 })
        return (try JSONDecoder().decode(T.self, from: data), data)
    }
}

enum GraphTypeArgument: String, ExpressibleByArgument, CaseIterable {
    case workload, app, versionedApp, service
}

/// `sextant graph`: who calls whom, with rates, errors and latency.
struct Graph: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the service graph: every edge with its rate, errors and latency.",
        discussion: """
            Edges failing (above 10 % 5xx or 20 % 4xx) are red, degraded ones (from 0.1 % 5xx or 10 % 4xx) \
            yellow, on a terminal. Examples:
              sextant graph --server http://127.0.0.1:9876 --window 1h
              sextant graph --data-dir /var/lib/sextant --type app --namespace shop
              sextant graph --format dot | dot -Tsvg > mesh.svg
              sextant graph --format mermaid >> README.md
            """)

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case table, dot, mermaid, json
    }

    @OptionGroup var mesh: MeshOptions
    @Option(help: "Graph of workloads, apps, versioned apps or services.") var type: GraphTypeArgument = .workload
    @Option(help: ArgumentHelp("Only edges with an end in this namespace.", valueName: "namespace")) var namespace: String?
    @Option(help: "table, dot (Graphviz), mermaid or json (the API's answer).") var format: Format = .table

    func run() async throws {
        var parameters = ["graphType": type.rawValue]
        if let namespace { parameters["namespace"] = namespace }
        let (graph, data) = try await mesh.decode(ServiceGraph.self, "/api/v1/graph", parameters)
        switch format {
        case .table: print(MeshRender.graphTable(graph, colour: mesh.colour), terminator: "")
        case .dot: print(MeshRender.dot(graph), terminator: "")
        case .mermaid: print(MeshRender.mermaid(graph), terminator: "")
        case .json: print(String(decoding: data, as: UTF8.self))
        }
    }
}

/// `sextant top`: the worst edges first.
struct Top: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the edges with the highest error rate, p99 latency or rate.",
        discussion: """
            Examples:
              sextant top --server http://127.0.0.1:9876
              sextant top --by p99 --window 1h --limit 5
            """)

    @OptionGroup var mesh: MeshOptions
    @Option(help: "errors (error rate), p99 or rps.") var by: MeshRender.TopOrder = .errors
    @Option(help: ArgumentHelp("Edges to print.", valueName: "n")) var limit = 10
    @Option(help: "Graph of workloads, apps, versioned apps or services.") var type: GraphTypeArgument = .workload

    func validate() throws {
        guard limit > 0 else { throw ValidationError("--limit must be positive") }
    }

    func run() async throws {
        let (graph, _) = try await mesh.decode(ServiceGraph.self, "/api/v1/graph", ["graphType": type.rawValue])
        print(MeshRender.top(graph, by: by, limit: limit, colour: mesh.colour), terminator: "")
    }
}

extension MeshRender.TopOrder: ExpressibleByArgument {}

/// `sextant signals`: golden signals per workload or service.
struct Signals: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the golden signals (rate, errors, latency, saturation) of workloads or services.",
        discussion: """
            Examples:
              sextant signals reviews-v2 --server http://127.0.0.1:9876
              sextant signals --by service --window 1h
            """)

    enum Grouping: String, ExpressibleByArgument, CaseIterable {
        case workload, service
    }

    @OptionGroup var mesh: MeshOptions
    @Option(help: "Per workload or per service.") var by: Grouping = .workload
    @Argument(help: ArgumentHelp("Only this workload or service (default all).", valueName: "name")) var name: String?

    func run() async throws {
        var parameters = ["by": by.rawValue]
        if let name { parameters["name"] = name }
        let (signals, _) = try await mesh.decode(GoldenSignals.self, "/api/v1/signals", parameters)
        print(MeshRender.signals(signals, colour: mesh.colour), terminator: "")
    }
}

/// `sextant diff`: what got worse.
struct Diff: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print what got worse since a baseline window, worst first (the page's \"What changed\").",
        discussion: """
            Compares each edge and node with the window before (or the same window a day earlier): new \
            errors, a higher error rate, a slower p99, traffic that vanished, edges that appeared. Examples:
              sextant diff --server http://127.0.0.1:9876 --window 15m
              sextant diff --baseline day --window 1h
            """)

    enum Baseline: String, ExpressibleByArgument, CaseIterable {
        case previous, day
    }

    @OptionGroup var mesh: MeshOptions
    @Option(help: "The window before, or the same window a day earlier.") var baseline: Baseline = .previous
    @Option(help: ArgumentHelp("Calls a window needs before its rates and latency count.", valueName: "n"))
    var minRequests = 20
    @Option(help: "Graph of workloads, apps, versioned apps or services.") var type: GraphTypeArgument = .workload

    func run() async throws {
        let (diff, _) = try await mesh.decode(
            GraphDiff.self, "/api/v1/diff",
            ["graphType": type.rawValue, "baseline": baseline.rawValue, "minRequests": String(minRequests)])
        print(MeshRender.diff(diff, colour: mesh.colour), terminator: "")
    }
}

/// `sextant traces`: trace search.
struct Traces: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Search traces: the newest with a span matching every criterion.",
        discussion: """
            Examples:
              sextant traces --server http://127.0.0.1:9876 --service reviews.default --errors
              sextant traces --min-duration 250ms --window 1h --limit 50
            """)

    @OptionGroup var mesh: MeshOptions
    @Option(help: ArgumentHelp("A span's service (Zipkin localEndpoint.serviceName).", valueName: "name")) var service: String?
    @Option(help: ArgumentHelp("A span at least this long, e.g. 250ms or 1.5s.", valueName: "duration")) var minDuration: String?
    @Flag(help: "Only traces with a span marked as an error.") var errors = false
    @Option(help: ArgumentHelp("Traces to print.", valueName: "n")) var limit = 20

    func run() async throws {
        var parameters = ["limit": String(limit), "status": errors ? "error" : "all"]
        if let service { parameters["service"] = service }
        if let minDuration { parameters["minDuration"] = minDuration }
        let (traces, _) = try await mesh.decode(TraceSearchAnswer.self, "/api/v1/traces", parameters)
        print(MeshRender.traces(traces, colour: mesh.colour), terminator: "")
    }
}
