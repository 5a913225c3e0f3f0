/// Cumulative totals of one Istio TCP series, for the `istio_tcp_*` metrics.
package struct TCPSeriesTotals: Sendable, Hashable {
    package var reporter: Reporter
    package var source: WorkloadIdentity
    package var destination: WorkloadIdentity
    package var service: ServiceRef
    package var responseFlags: String
    package var securityPolicy: String
    /// Connections reported closed (each stored connection is a closed one).
    package var connections: Int
    package var receivedBytes: Int64
    package var sentBytes: Int64

    package init(
        reporter: Reporter, source: WorkloadIdentity, destination: WorkloadIdentity, service: ServiceRef,
        responseFlags: String, securityPolicy: String, connections: Int, receivedBytes: Int64, sentBytes: Int64
    ) {
        self.reporter = reporter
        self.source = source
        self.destination = destination
        self.service = service
        self.responseFlags = responseFlags
        self.securityPolicy = securityPolicy
        self.connections = connections
        self.receivedBytes = receivedBytes
        self.sentBytes = sentBytes
    }
}
