package import SextantModel

/// What a set of call aggregates adds up to on one edge or node of the graph: every call counted
/// once (`CallAggregate.isCounted`), latency from the destination's reports when there are any (no
/// network time, as Kiali prefers), otherwise from the source's.
package struct CallTally: Sendable {
    package var requests = 0
    package var errors = 0
    package var serverErrors = 0
    package var byCode: [String: Int] = [:]
    package var destinationLatency = LatencySketch()
    package var sourceLatency = LatencySketch()
    package var requestBytes: Int64 = 0
    package var responseBytes: Int64 = 0
    package var sources: IngestChannel = []

    package init() {}

    package mutating func add(_ a: CallAggregate) {
        if a.reporter == .destination {
            destinationLatency.merge(a.latency)
        } else {
            sourceLatency.merge(a.latency)
        }
        sources.formUnion(a.sources)
        guard a.isCounted else { return }
        requests += a.count
        if CallOutcome.isError(responseCode: a.responseCode, grpcStatus: a.grpcStatus, requestProtocol: a.requestProtocol) {
            errors += a.count
        }
        if CallOutcome.isServerError(responseCode: a.responseCode) { serverErrors += a.count }
        byCode[String(a.responseCode), default: 0] += a.count
        requestBytes += a.requestBytes
        responseBytes += a.responseBytes
    }

    package mutating func merge(_ other: CallTally) {
        requests += other.requests
        errors += other.errors
        serverErrors += other.serverErrors
        byCode.merge(other.byCode, uniquingKeysWith: +)
        destinationLatency.merge(other.destinationLatency)
        sourceLatency.merge(other.sourceLatency)
        requestBytes += other.requestBytes
        responseBytes += other.responseBytes
        sources.formUnion(other.sources)
    }

    /// The latency the graph shows: the destination's when it reported any.
    package var latency: LatencySketch { destinationLatency.count > 0 ? destinationLatency : sourceLatency }

    package var errorRate: Double { requests == 0 ? 0 : ServiceGraph.Latency.round(Double(errors) / Double(requests)) }

    package func rps(overSeconds seconds: Double) -> Double {
        ServiceGraph.Latency.round(Double(requests) / max(seconds, 1))
    }
}
