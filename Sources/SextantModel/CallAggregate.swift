/// Calls that share every grouping dimension within a time range, as the store returns them for
/// the graph and signals.
package struct CallAggregate: Sendable, Hashable {
    package var reporter: Reporter
    /// The reporting proxy's workload.
    package var proxy: WorkloadIdentity
    /// The other side's workload, when known.
    package var peer: WorkloadIdentity?
    package var service: ServiceRef
    package var requestProtocol: RequestProtocol
    package var responseCode: Int
    package var grpcStatus: Int?
    package var responseFlags: String
    /// Whether the other proxy's report of the same calls was found: such calls are counted from
    /// the source side only.
    package var paired: Bool
    /// The calls' durations (its sum is `durationMicrosSum`).
    package var latency: LatencySketch
    package var sources: IngestChannel
    package var count: Int
    package var durationMicrosSum: Int64
    package var requestBytes: Int64
    package var responseBytes: Int64

    package init(
        reporter: Reporter, proxy: WorkloadIdentity, peer: WorkloadIdentity?, service: ServiceRef,
        requestProtocol: RequestProtocol, responseCode: Int, grpcStatus: Int?, responseFlags: String,
        paired: Bool, latency: LatencySketch, sources: IngestChannel, count: Int, durationMicrosSum: Int64,
        requestBytes: Int64, responseBytes: Int64
    ) {
        self.reporter = reporter
        self.proxy = proxy
        self.peer = peer
        self.service = service
        self.requestProtocol = requestProtocol
        self.responseCode = responseCode
        self.grpcStatus = grpcStatus
        self.responseFlags = responseFlags
        self.paired = paired
        self.latency = latency
        self.sources = sources
        self.count = count
        self.durationMicrosSum = durationMicrosSum
        self.requestBytes = requestBytes
        self.responseBytes = responseBytes
    }

    /// The calling workload (`unknown` when no sidecar reported it).
    package var sourceWorkload: WorkloadIdentity {
        reporter == .source ? proxy : (peer ?? .unknown)
    }

    /// The answering workload, when known.
    package var destinationWorkload: WorkloadIdentity? {
        reporter == .source ? peer : proxy
    }

    /// Each call is counted once: from the source proxy's report, or from the destination's when
    /// the source did not report it.
    package var isCounted: Bool {
        reporter == .source || !paired
    }
}

/// How Istio and Kiali classify a call's outcome.
package enum CallOutcome {
    /// 4xx, 5xx, no response (code 0), or a non-OK gRPC status.
    package static func isError(responseCode: Int, grpcStatus: Int?, requestProtocol: RequestProtocol) -> Bool {
        if requestProtocol == .tcp { return false }
        if responseCode == 0 || responseCode >= 400 { return true }
        if requestProtocol == .grpc, let status = grpcStatus, status != 0 { return true }
        return false
    }

    /// 5xx only.
    package static func isServerError(responseCode: Int) -> Bool {
        (500...599).contains(responseCode)
    }
}
