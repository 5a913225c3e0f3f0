/// One traced call standing for the calls that share its grouping dimensions: the slowest of
/// them, or the newest failed one.
package struct CallExample: Sendable, Hashable {
    package var reporter: Reporter
    package var proxy: WorkloadIdentity
    package var peer: WorkloadIdentity?
    package var service: ServiceRef
    package var requestProtocol: RequestProtocol
    package var traceID: String
    package var durationMicros: Int64
    /// Whether this is the newest failed call of its group; otherwise it is the slowest call.
    package var isError: Bool

    package init(
        reporter: Reporter, proxy: WorkloadIdentity, peer: WorkloadIdentity?, service: ServiceRef,
        requestProtocol: RequestProtocol, traceID: String, durationMicros: Int64, isError: Bool
    ) {
        self.reporter = reporter
        self.proxy = proxy
        self.peer = peer
        self.service = service
        self.requestProtocol = requestProtocol
        self.traceID = traceID
        self.durationMicros = durationMicros
        self.isError = isError
    }

    /// The calling workload (`unknown` when no sidecar reported it).
    package var sourceWorkload: WorkloadIdentity {
        reporter == .source ? proxy : (peer ?? .unknown)
    }

    /// The answering workload, when known.
    package var destinationWorkload: WorkloadIdentity? {
        reporter == .source ? peer : proxy
    }
}
