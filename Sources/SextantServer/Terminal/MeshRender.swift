import Foundation
package import SextantAnalytics

/// What the terminal commands print, from the query API's answers (decoded from a server's JSON,
/// or straight from `LocalQueries`): tables, and the graph as Graphviz `dot` or Mermaid.
package enum MeshRender {
    /// How `sextant top` orders edges.
    package enum TopOrder: String, CaseIterable, Sendable {
        case errors, p99, rps
    }

    /// A node id as a person reads it: `namespace/workload`, `namespace/app:version`, a service's
    /// host, or `unknown`.
    package static func name(_ id: String) -> String {
        let parts = id.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        switch parts.first {
        case "workload" where parts.count == 3, "app" where parts.count == 3: return "\(parts[1])/\(parts[2])"
        case "versionedApp" where parts.count == 4: return "\(parts[1])/\(parts[2]):\(parts[3])"
        case "service" where parts.count >= 2: return parts.dropFirst().joined(separator: ":")
        default: return id
        }
    }

    /// Kiali's health of an edge: failing above 10 % 5xx (20 % 4xx), degraded from 0.1 % 5xx
    /// (10 % 4xx); TCP edges have none.
    package static func health(_ edge: ServiceGraph.Edge) -> TextTable.Tone {
        guard edge.protocol != "tcp", edge.requests > 0 else { return .plain }
        let total = Double(edge.requests)
        let fiveXX = Double(edge.serverErrors) / total
        let fourXX = Double(edge.byCode.filter { $0.key.hasPrefix("4") }.values.reduce(0, +)) / total
        if fiveXX > 0.1 || fourXX > 0.2 { return .failure }
        if fiveXX >= 0.001 || fourXX >= 0.1 { return .warning }
        return .plain
    }

    package static func graphTable(_ graph: ServiceGraph, colour: Bool) -> String {
        var table = edgeTable()
        for edge in graph.edges { addEdge(edge, to: &table) }
        return table.isEmpty ? "no calls in the window\n" : table.render(colour: colour)
    }

    package static func top(_ graph: ServiceGraph, by order: TopOrder, limit: Int, colour: Bool) -> String {
        let ranked = graph.edges.enumerated().sorted { a, b in
            let (x, y) = (key(a.element, order), key(b.element, order))
            return x != y ? x > y : a.offset < b.offset
        }.map(\.element)
        var table = edgeTable()
        for edge in ranked.prefix(limit) { addEdge(edge, to: &table) }
        return table.isEmpty ? "no calls in the window\n" : table.render(colour: colour)
    }

    private static func key(_ edge: ServiceGraph.Edge, _ order: TopOrder) -> Double {
        switch order {
        case .errors: edge.errorRate
        case .p99: edge.latencyMs?.p99 ?? -1
        case .rps: edge.rps
        }
    }

    private static func edgeTable() -> TextTable {
        TextTable([
            .init("SOURCE"), .init("TARGET"), .init("PROTO"), .init("RPS", .right), .init("REQUESTS", .right),
            .init("ERRORS", .right), .init("P50 MS", .right), .init("P99 MS", .right), .init("SEEN IN"),
        ])
    }

    private static func addEdge(_ edge: ServiceGraph.Edge, to table: inout TextTable) {
        table.add(
            [
                name(edge.source), name(edge.target), edge.protocol, number(edge.rps), String(edge.requests),
                percent(edge.errorRate), edge.latencyMs.map { number($0.p50) } ?? "-",
                edge.latencyMs.map { number($0.p99) } ?? "-", edge.sources.joined(separator: ","),
            ], tone: health(edge))
    }

    /// The graph for Graphviz: `sextant graph --format dot | dot -Tsvg > mesh.svg`.
    package static func dot(_ graph: ServiceGraph) -> String {
        var out = "digraph mesh {\n  rankdir=LR;\n  node [shape=box, fontname=\"Helvetica\"];\n"
        for node in graph.nodes {
            let style = node.type == "workload" || node.type == "app" ? "" : ", style=dashed"
            out += "  \(quoted(node.id)) [label=\(quoted(name(node.id)))\(style)];\n"
        }
        for edge in graph.edges {
            let colour =
                switch health(edge) {
                case .failure: "red"
                case .warning: "orange"
                case .plain: edge.protocol == "tcp" ? "blue" : "darkgreen"
                }
            let style = edge.protocol == "tcp" ? ", style=dashed" : ""
            out += "  \(quoted(edge.source)) -> \(quoted(edge.target)) [label=\(quoted(edgeLabel(edge))), color=\(colour)\(style)];\n"
        }
        return out + "}\n"
    }

    /// The graph for Mermaid (a Markdown code block `mermaid` renders it).
    package static func mermaid(_ graph: ServiceGraph) -> String {
        var ids: [String: String] = [:]
        for (i, node) in graph.nodes.enumerated() { ids[node.id] = "n\(i)" }
        var out = "flowchart LR\n"
        for node in graph.nodes {
            let text = name(node.id).replacingOccurrences(of: "\"", with: "#quot;")
            out += node.type == "workload" || node.type == "app"
                ? "  \(ids[node.id]!)[\"\(text)\"]\n" : "  \(ids[node.id]!)([\"\(text)\"])\n"
        }
        for edge in graph.edges {
            guard let from = ids[edge.source], let to = ids[edge.target] else { continue }
            let arrow = edge.protocol == "tcp" ? "-.->" : "-->"
            out += "  \(from) \(arrow)|\"\(edgeLabel(edge))\"| \(to)\n"
        }
        return out
    }

    private static func edgeLabel(_ edge: ServiceGraph.Edge) -> String {
        var label = "\(number(edge.rps)) rps"
        if edge.protocol != "tcp" { label += ", \(percent(edge.errorRate)) errors" }
        if let p99 = edge.latencyMs?.p99 { label += ", p99 \(number(p99)) ms" }
        return label
    }

    package static func signals(_ signals: GoldenSignals, colour: Bool) -> String {
        var table = TextTable([
            .init(signals.by == "service" ? "SERVICE" : "WORKLOAD"), .init("NAMESPACE"), .init("RPS", .right),
            .init("REQUESTS", .right), .init("ERRORS", .right), .init("P50 MS", .right), .init("P90 MS", .right),
            .init("P99 MS", .right), .init("IN FLIGHT", .right), .init("SHED", .right),
        ])
        for item in signals.items {
            let tone: TextTable.Tone =
                item.errorRate > 0.1 ? .failure : item.errorRate >= 0.001 ? .warning : .plain
            table.add(
                [
                    item.name, item.namespace, number(item.rps), String(item.requests), percent(item.errorRate),
                    item.latencyMs.map { number($0.p50) } ?? "-", item.latencyMs.map { number($0.p90) } ?? "-",
                    item.latencyMs.map { number($0.p99) } ?? "-", number(item.saturation.inFlight),
                    String(item.saturation.overflowRequests + item.saturation.rateLimitedRequests),
                ], tone: tone)
        }
        return table.isEmpty ? "no calls in the window\n" : table.render(colour: colour)
    }

    package static func diff(_ diff: GraphDiff, colour: Bool) -> String {
        var table = TextTable([.init("#", .right), .init("WHAT"), .init("SCORE", .right), .init("CHANGES")])
        let items =
            diff.edges.map { (what: "\(name($0.source)) → \(name($0.target))", score: $0.score, changes: $0.changes) }
            + diff.nodes.map { (what: "node \(name($0.id))", score: $0.score, changes: $0.changes) }
        let ranked = items.enumerated().sorted { a, b in
            a.element.score != b.element.score ? a.element.score > b.element.score : a.offset < b.offset
        }.map(\.element)
        for (rank, item) in ranked.enumerated() {
            let worst = item.changes.contains { $0.kind == .newErrors || $0.kind == .trafficVanished }
            table.add(
                [String(rank + 1), item.what, number(item.score), item.changes.map(\.description).joined(separator: "; ")],
                tone: worst ? .failure : item.score >= 10 ? .warning : .plain)
        }
        let header = "\(time(diff.current.startUnixSeconds))–\(time(diff.current.endUnixSeconds)) against "
            + "\(time(diff.baseline.startUnixSeconds))–\(time(diff.baseline.endUnixSeconds))\n"
        return header + (table.isEmpty ? "nothing got worse\n" : table.render(colour: colour))
    }

    package static func traces(_ traces: TraceSearchAnswer, colour: Bool) -> String {
        var table = TextTable([
            .init("TRACE"), .init("START"), .init("DURATION MS", .right), .init("ROOT"), .init("SPANS", .right),
            .init("ERRORS", .right), .init("SERVICES"),
        ])
        for t in traces.traces {
            table.add(
                [
                    t.traceId, time(Double(t.startUnixMicros) / 1_000_000), number(Double(t.durationMicros) / 1000),
                    "\(t.rootService) \(t.rootName)", String(t.spanCount), String(t.errorCount),
                    t.services.joined(separator: ","),
                ], tone: t.errorCount > 0 ? .failure : .plain)
        }
        return table.isEmpty ? "no traces match\n" : table.render(colour: colour)
    }

    // MARK: - Numbers and names

    /// Up to three decimals, without trailing zeros.
    package static func number(_ value: Double) -> String {
        var text = String(format: "%.3f", value)
        while text.hasSuffix("0") { text.removeLast() }
        if text.hasSuffix(".") { text.removeLast() }
        return text == "-0" ? "0" : text
    }

    package static func percent(_ rate: Double) -> String {
        String(format: "%.1f%%", rate * 100)
    }

    /// UTC, to the second: `2026-12-06 15:12:19`.
    static func time(_ unixSeconds: Double) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd HH:mm:ss"
        return formatter.string(from: Date(timeIntervalSince1970: unixSeconds))
    }

    private static func quoted(_ text: String) -> String {
        "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }
}
