/// The call a proxy's span reported, as stored: who reported it and which graph edge it counts on.
package struct SpanCall: Sendable, Hashable {
    package var spanID: String
    package var reporter: Reporter
    /// The reporting proxy's workload.
    package var proxy: WorkloadIdentity
    /// The other side's workload, when known.
    package var peer: WorkloadIdentity?
    package var service: ServiceRef
    package var requestProtocol: RequestProtocol
    package var responseCode: Int
    package var grpcStatus: Int?

    package init(
        spanID: String, reporter: Reporter, proxy: WorkloadIdentity, peer: WorkloadIdentity?, service: ServiceRef,
        requestProtocol: RequestProtocol, responseCode: Int, grpcStatus: Int?
    ) {
        self.spanID = spanID
        self.reporter = reporter
        self.proxy = proxy
        self.peer = peer
        self.service = service
        self.requestProtocol = requestProtocol
        self.responseCode = responseCode
        self.grpcStatus = grpcStatus
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
