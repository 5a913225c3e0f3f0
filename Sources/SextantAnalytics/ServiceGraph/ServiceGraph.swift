package import SextantModel

/// The service graph of a time window, as `/api/v1/graph` returns it.
package struct ServiceGraph: Sendable, Codable {
    package struct Node: Sendable, Codable, Hashable {
        package var id: String
        /// `workload`, `app`, `service` or `unknown`.
        package var type: String
        package var namespace: String
        package var workload: String?
        package var app: String?
        package var version: String?
        package var service: String?
    }

    package struct Latency: Sendable, Codable, Hashable {
        package var p50: Double
        package var p90: Double
        package var p95: Double
        package var p99: Double
        package var mean: Double

        /// Milliseconds from a sketch of microseconds; nil when it is empty.
        package init?(_ sketch: LatencySketch) {
            guard let mean = sketch.mean else { return nil }
            func ms(_ q: Double) -> Double { Self.round((sketch.quantile(q) ?? 0) / 1000) }
            p50 = ms(0.5)
            p90 = ms(0.9)
            p95 = ms(0.95)
            p99 = ms(0.99)
            self.mean = Self.round(mean / 1000)
        }

        package static func round(_ v: Double) -> Double { (v * 1000).rounded() / 1000 }
    }

    package struct Edge: Sendable, Codable {
        package var source: String
        package var target: String
        package var `protocol`: String
        package var requests: Int
        package var errors: Int
        package var serverErrors: Int
        package var byCode: [String: Int]
        package var rps: Double
        package var errorRate: Double
        package var latencyMs: Latency?
        package var requestBytes: Int64
        package var responseBytes: Int64
        package var sources: [String]
        /// Traces that show the edge's calls (see `addExampleTraces`).
        package var exampleTraces: ExampleTraces? = nil
    }

    package var graphType: String
    package var windowSeconds: Double
    package var endUnixSeconds: Double
    package var nodes: [Node]
    package var edges: [Edge]
}

extension ServiceGraph {
    /// Builds the graph from stored call aggregates.
    ///
    /// Every call counts once: from the source proxy's report, or from the destination proxy's
    /// when the source did not report it (a caller without a sidecar). Latency comes from the
    /// destination's reports when the edge has any (no network time), as Kiali prefers.
    package init(
        aggregates: [CallAggregate], graphType: GraphType, windowSeconds: Double, endUnixSeconds: Double,
        namespace: String? = nil
    ) {
        struct EdgeKey: Hashable {
            var source: Node
            var target: Node
            var proto: RequestProtocol
        }
        var totals: [EdgeKey: CallTally] = [:]
        for a in aggregates {
            let (sourceNode, targetNode) = Self.ends(of: a, graphType: graphType)
            if let namespace, sourceNode.namespace != namespace, targetNode.namespace != namespace { continue }
            totals[EdgeKey(source: sourceNode, target: targetNode, proto: a.requestProtocol), default: CallTally()].add(a)
        }
        var nodes = Set<Node>()
        var edges: [Edge] = []
        for (key, t) in totals where t.requests > 0 {
            nodes.insert(key.source)
            nodes.insert(key.target)
            edges.append(
                Edge(
                    source: key.source.id, target: key.target.id, protocol: key.proto.label, requests: t.requests,
                    errors: t.errors, serverErrors: t.serverErrors, byCode: t.byCode,
                    rps: t.rps(overSeconds: windowSeconds), errorRate: t.errorRate, latencyMs: Latency(t.latency),
                    requestBytes: t.requestBytes, responseBytes: t.responseBytes, sources: t.sources.names))
        }
        self.graphType = graphType.rawValue
        self.windowSeconds = windowSeconds
        self.endUnixSeconds = endUnixSeconds
        self.nodes = nodes.sorted { $0.id < $1.id }
        self.edges = edges.sorted { ($0.source, $0.target, $0.protocol) < ($1.source, $1.target, $1.protocol) }
    }

    /// The graph nodes an aggregate's calls go from and to: the destination's workload when it is
    /// known (its service on a service graph), otherwise the service the caller addressed.
    package static func ends(of a: CallAggregate, graphType: GraphType) -> (source: Node, target: Node) {
        let source = node(for: a.sourceWorkload, graphType: graphType)
        let target =
            a.destinationWorkload.flatMap { $0.isKnown ? node(for: $0, graphType: graphType) : nil }
            .map { graphType == .service ? serviceNode(a.service) : $0 } ?? serviceNode(a.service)
        return (source, target)
    }

    static func node(for w: WorkloadIdentity, graphType: GraphType) -> Node {
        guard w.isKnown else {
            return Node(id: "unknown", type: "unknown", namespace: "unknown", workload: "unknown", app: "unknown")
        }
        switch graphType {
        case .workload:
            return Node(
                id: "workload:\(w.namespace):\(w.workload)", type: "workload", namespace: w.namespace,
                workload: w.workload, app: w.canonicalService, version: w.canonicalRevision)
        case .app:
            return Node(
                id: "app:\(w.namespace):\(w.canonicalService)", type: "app", namespace: w.namespace,
                app: w.canonicalService)
        case .versionedApp:
            return Node(
                id: "versionedApp:\(w.namespace):\(w.canonicalService):\(w.canonicalRevision)", type: "app",
                namespace: w.namespace, app: w.canonicalService, version: w.canonicalRevision)
        case .service:
            return serviceNode(
                ServiceRef(
                    host: "\(w.canonicalService).\(w.namespace).svc.cluster.local", name: w.canonicalService,
                    namespace: w.namespace))
        }
    }

    static func serviceNode(_ s: ServiceRef) -> Node {
        Node(id: "service:\(s.host)", type: "service", namespace: s.namespace, service: s.name)
    }
}
