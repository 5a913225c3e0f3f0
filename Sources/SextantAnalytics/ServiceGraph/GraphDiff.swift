package import SextantModel

/// What got worse on the graph between a baseline window and the current one, as `/api/v1/diff`
/// returns it: each edge and node (its inbound calls) compared, those with a change ranked worst
/// first.
///
/// Ranked: errors that are new (score 10 plus the error rate in percent), a rise of the error rate
/// of at least one point (the rise in points), a p99 at least 20 % and 1 ms slower (ten for each
/// baseline p99 added, at most 100), traffic that vanished (50), an edge that appeared (1).
/// Rates and latency are compared only where a window has at least `minRequests` calls, so a
/// handful of calls is not ranked as a change.
package struct GraphDiff: Sendable, Codable {
    package struct Window: Sendable, Codable {
        package var startUnixSeconds: Double
        package var endUnixSeconds: Double
    }

    package struct Figures: Sendable, Codable {
        package var requests: Int
        package var rps: Double
        package var errors: Int
        package var errorRate: Double
        package var p99Ms: Double?

        init(_ t: CallTally, seconds: Double) {
            requests = t.requests
            rps = t.rps(overSeconds: seconds)
            errors = t.errors
            errorRate = t.errorRate
            p99Ms = ServiceGraph.Latency(t.latency)?.p99
        }
    }

    package struct Change: Sendable, Codable {
        package enum Kind: String, Sendable, Codable {
            case newErrors, errorRateIncrease, latencyIncrease, trafficVanished, appeared
        }

        package var kind: Kind
        package var before: Double
        package var after: Double
        package var description: String
        var score: Double = 0
        private enum CodingKeys: String, CodingKey { case kind, before, after, description }
    }

    package struct EdgeChange: Sendable, Codable {
        package var source: String
        package var target: String
        package var `protocol`: String
        package var score: Double
        package var changes: [Change]
        package var current: Figures
        package var baseline: Figures
    }

    package struct NodeChange: Sendable, Codable {
        package var id: String
        package var score: Double
        package var changes: [Change]
        package var current: Figures
        package var baseline: Figures
    }

    package var graphType: String
    package var windowSeconds: Double
    package var minRequests: Int
    package var current: Window
    package var baseline: Window
    package var edges: [EdgeChange]
    package var nodes: [NodeChange]

    package init(
        current: [CallAggregate], baseline: [CallAggregate], graphType: GraphType, windowSeconds: Double,
        endUnixSeconds: Double, baselineEndUnixSeconds: Double, minRequests: Int, namespace: String? = nil
    ) {
        struct EdgeKey: Hashable, Comparable {
            var source: String, target: String, proto: String
            static func < (a: Self, b: Self) -> Bool { (a.source, a.target, a.proto) < (b.source, b.target, b.proto) }
        }
        func tallies(_ aggregates: [CallAggregate]) -> (edges: [EdgeKey: CallTally], nodes: [String: CallTally]) {
            var edges: [EdgeKey: CallTally] = [:]
            var nodes: [String: CallTally] = [:]
            for a in aggregates {
                let (source, target) = ServiceGraph.ends(of: a, graphType: graphType)
                if let namespace, source.namespace != namespace, target.namespace != namespace { continue }
                edges[EdgeKey(source: source.id, target: target.id, proto: a.requestProtocol.label), default: CallTally()].add(a)
                nodes[target.id, default: CallTally()].add(a)
            }
            return (edges, nodes)
        }
        let now = tallies(current)
        let before = tallies(baseline)
        let compare = { (c: CallTally, b: CallTally) in
            Self.changes(current: c, baseline: b, minRequests: minRequests, windowSeconds: windowSeconds)
        }
        var edges: [EdgeChange] = []
        for key in Set(now.edges.keys).union(before.edges.keys).sorted() {
            let c = now.edges[key] ?? CallTally()
            let b = before.edges[key] ?? CallTally()
            let changes = compare(c, b)
            guard !changes.isEmpty else { continue }
            edges.append(
                EdgeChange(
                    source: key.source, target: key.target, protocol: key.proto, score: Self.total(changes),
                    changes: changes, current: Figures(c, seconds: windowSeconds), baseline: Figures(b, seconds: windowSeconds)))
        }
        var nodes: [NodeChange] = []
        for id in Set(now.nodes.keys).union(before.nodes.keys).sorted() {
            let c = now.nodes[id] ?? CallTally()
            let b = before.nodes[id] ?? CallTally()
            let changes = compare(c, b)
            guard !changes.isEmpty else { continue }
            nodes.append(
                NodeChange(
                    id: id, score: Self.total(changes), changes: changes, current: Figures(c, seconds: windowSeconds),
                    baseline: Figures(b, seconds: windowSeconds)))
        }
        // Worst first; ties keep the order of their keys.
        self.edges = edges.enumerated().sorted { ($0.element.score, -$0.offset) > ($1.element.score, -$1.offset) }.map(\.element)
        self.nodes = nodes.enumerated().sorted { ($0.element.score, -$0.offset) > ($1.element.score, -$1.offset) }.map(\.element)
        self.graphType = graphType.rawValue
        self.windowSeconds = windowSeconds
        self.minRequests = minRequests
        self.current = Window(startUnixSeconds: endUnixSeconds - windowSeconds, endUnixSeconds: endUnixSeconds)
        self.baseline = Window(
            startUnixSeconds: baselineEndUnixSeconds - windowSeconds, endUnixSeconds: baselineEndUnixSeconds)
    }

    private static func total(_ changes: [Change]) -> Double {
        ServiceGraph.Latency.round(changes.reduce(0) { $0 + $1.score })
    }

    /// What got worse from `baseline` to `current` on one edge or node.
    static func changes(current c: CallTally, baseline b: CallTally, minRequests: Int, windowSeconds: Double) -> [Change] {
        var changes: [Change] = []
        func percent(_ rate: Double) -> String { "\(ServiceGraph.Latency.round(rate * 100))%" }
        if b.requests == 0 && c.requests > 0 {
            changes.append(
                Change(kind: .appeared, before: 0, after: Double(c.requests), description: "new: \(c.requests) requests", score: 1))
        }
        if b.requests >= minRequests && c.requests == 0 {
            changes.append(
                Change(
                    kind: .trafficVanished, before: Double(b.requests), after: 0,
                    description: "traffic vanished: \(b.requests) requests before, none now", score: 50))
        }
        let enough = c.requests >= minRequests
        if enough && c.errors > 0 && (b.errors == 0 || b.requests < minRequests) {
            changes.append(
                Change(
                    kind: .newErrors, before: b.errorRate, after: c.errorRate,
                    description: "new errors: \(c.errors) of \(c.requests) (\(percent(c.errorRate)))",
                    score: 10 + c.errorRate * 100))
        } else if enough && b.requests >= minRequests && c.errorRate - b.errorRate >= 0.01 {
            changes.append(
                Change(
                    kind: .errorRateIncrease, before: b.errorRate, after: c.errorRate,
                    description: "error rate \(percent(b.errorRate)) → \(percent(c.errorRate))",
                    score: (c.errorRate - b.errorRate) * 100))
        }
        if enough, b.requests >= minRequests, let now = ServiceGraph.Latency(c.latency)?.p99,
            let then = ServiceGraph.Latency(b.latency)?.p99, then > 0, now >= then * 1.2, now - then >= 1
        {
            changes.append(
                Change(
                    kind: .latencyIncrease, before: then, after: now,
                    description: "p99 \(then) ms → \(now) ms",
                    score: min(100, 10 * (now / then - 1))))
        }
        return changes
    }
}
