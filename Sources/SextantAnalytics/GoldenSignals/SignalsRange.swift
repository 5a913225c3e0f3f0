package import SextantModel

/// One node or edge of the graph whose signals are asked for.
package enum GraphSubject: Sendable, Hashable {
    /// A node's calls: those it answered (inbound) or those it made (outbound).
    case node(id: String, outbound: Bool)
    /// An edge's calls; any protocol when `protocol` is nil.
    case edge(source: String, target: String, protocol: String?)

    func matches(_ a: CallAggregate, graphType: GraphType) -> Bool {
        let ends = ServiceGraph.ends(of: a, graphType: graphType)
        switch self {
        case .node(let id, let outbound):
            return (outbound ? ends.source.id : ends.target.id) == id
        case .edge(let source, let target, let proto):
            return ends.source.id == source && ends.target.id == target && (proto.map { $0 == a.requestProtocol.label } ?? true)
        }
    }
}

/// A node's or edge's golden signals step by step over a window, as `/api/v1/signals/range`
/// returns them: the figures `/api/v1/graph` gives for the same calls, per step and in total.
package struct SignalsRange: Sendable, Encodable {
    package struct Point: Sendable, Encodable {
        package var startUnixSeconds: Double
        package var endUnixSeconds: Double
        package var requests: Int
        package var rps: Double
        package var errors: Int
        package var serverErrors: Int
        package var errorRate: Double
        package var latencyMs: ServiceGraph.Latency?
    }

    package struct Total: Sendable, Encodable {
        package var requests: Int
        package var rps: Double
        package var errors: Int
        package var serverErrors: Int
        package var errorRate: Double
        package var latencyMs: ServiceGraph.Latency?
        package var byCode: [String: Int]
        package var requestBytes: Int64
        package var responseBytes: Int64
        package var sources: [String]
    }

    /// The calls of one step: `[fromSeconds, toSeconds)`.
    package struct Step: Sendable {
        package var fromSeconds: Double
        package var toSeconds: Double
        package var aggregates: [CallAggregate]

        package init(fromSeconds: Double, toSeconds: Double, aggregates: [CallAggregate]) {
            self.fromSeconds = fromSeconds
            self.toSeconds = toSeconds
            self.aggregates = aggregates
        }
    }

    package var graphType: String
    package var windowSeconds: Double
    package var endUnixSeconds: Double
    package var stepSeconds: Double
    package var node: String?
    package var direction: String?
    package var source: String?
    package var target: String?
    package var `protocol`: String?
    package var points: [Point]
    package var total: Total

    package init(steps: [Step], subject: GraphSubject, graphType: GraphType, stepSeconds: Double) {
        var whole = CallTally()
        points = steps.map { step in
            var tally = CallTally()
            for a in step.aggregates where subject.matches(a, graphType: graphType) { tally.add(a) }
            whole.merge(tally)
            return Point(
                startUnixSeconds: step.fromSeconds, endUnixSeconds: step.toSeconds, requests: tally.requests,
                rps: tally.rps(overSeconds: step.toSeconds - step.fromSeconds), errors: tally.errors,
                serverErrors: tally.serverErrors, errorRate: tally.errorRate, latencyMs: ServiceGraph.Latency(tally.latency))
        }
        let from = steps.first?.fromSeconds ?? 0
        let end = steps.last?.toSeconds ?? 0
        self.graphType = graphType.rawValue
        windowSeconds = end - from
        endUnixSeconds = end
        self.stepSeconds = stepSeconds
        switch subject {
        case .node(let id, let outbound):
            node = id
            direction = outbound ? "outbound" : "inbound"
        case .edge(let source, let target, let proto):
            self.source = source
            self.target = target
            self.protocol = proto
        }
        total = Total(
            requests: whole.requests, rps: whole.rps(overSeconds: windowSeconds), errors: whole.errors,
            serverErrors: whole.serverErrors, errorRate: whole.errorRate, latencyMs: ServiceGraph.Latency(whole.latency),
            byCode: whole.byCode, requestBytes: whole.requestBytes, responseBytes: whole.responseBytes,
            sources: whole.sources.names)
    }

    /// The steps of a window ending at `endSeconds`, each `stepSeconds` long and aligned on the
    /// end; the first is cut short when the window is not a whole number of steps.
    package static func steps(windowSeconds: Double, endSeconds: Double, stepSeconds: Double) -> [(from: Double, to: Double)] {
        let start = endSeconds - windowSeconds
        var bounds: [(from: Double, to: Double)] = []
        var to = endSeconds
        while to > start {
            let from = max(start, to - stepSeconds)
            bounds.append((from, to))
            to = from
        }
        return bounds.reversed()
    }
}
