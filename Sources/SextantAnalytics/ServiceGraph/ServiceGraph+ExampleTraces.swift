package import SextantModel

extension ServiceGraph {
    /// Trace ids that show an edge's calls: its slowest traced call and its newest failed one.
    package struct ExampleTraces: Sendable, Codable, Hashable {
        package var slowest: String?
        package var slowestMs: Double?
        package var error: String?
    }

    /// Links each edge to example traces, placing each example on the edge its call counts on.
    package mutating func addExampleTraces(_ examples: [CallExample]) {
        guard let type = GraphType(rawValue: graphType) else { return }
        var byEdge: [String: ExampleTraces] = [:]
        var slowestMicros: [String: Int64] = [:]
        for e in examples {
            let source = Self.node(for: e.sourceWorkload, graphType: type)
            let target =
                e.destinationWorkload.flatMap { $0.isKnown ? Self.node(for: $0, graphType: type) : nil }
                .map { type == .service ? Self.serviceNode(e.service) : $0 } ?? Self.serviceNode(e.service)
            let key = "\(source.id)\u{0}\(target.id)\u{0}\(e.requestProtocol.label)"
            var found = byEdge[key, default: ExampleTraces()]
            if e.isError {
                found.error = found.error ?? e.traceID
            } else if e.durationMicros > slowestMicros[key, default: -1] {
                slowestMicros[key] = e.durationMicros
                found.slowest = e.traceID
                found.slowestMs = Latency.round(Double(e.durationMicros) / 1000)
            }
            byEdge[key] = found
        }
        for i in edges.indices {
            let key = "\(edges[i].source)\u{0}\(edges[i].target)\u{0}\(edges[i].protocol)"
            edges[i].exampleTraces = byEdge[key]
        }
    }
}
