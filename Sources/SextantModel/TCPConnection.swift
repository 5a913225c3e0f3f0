/// One TCP connection proxied by a sidecar, as that sidecar reported it (Envoy TCP access logs).
package struct TCPConnection: Sendable, Hashable {
    package var reporter: Reporter
    package var proxy: WorkloadIdentity
    package var peer: WorkloadIdentity?
    package var service: ServiceRef
    /// Connection start, µs since the epoch.
    package var startMicros: Int64
    package var durationMicros: Int64
    /// Bytes received from the downstream peer (client → server on both sides).
    package var receivedBytes: Int64
    /// Bytes sent to the downstream peer.
    package var sentBytes: Int64
    package var responseFlags: String
    package var securityPolicy: String
    /// Inbound: `downstream_local_address`; outbound: `upstream_local_address`.
    package var localAddress: String?
    /// Inbound: `downstream_remote_address`; outbound: `upstream_host`.
    package var remoteAddress: String?
    package var channel: IngestChannel

    package init(
        reporter: Reporter, proxy: WorkloadIdentity, peer: WorkloadIdentity? = nil, service: ServiceRef,
        startMicros: Int64, durationMicros: Int64, receivedBytes: Int64, sentBytes: Int64,
        responseFlags: String = "-", securityPolicy: String? = nil, localAddress: String? = nil,
        remoteAddress: String? = nil, channel: IngestChannel
    ) {
        self.reporter = reporter
        self.proxy = proxy
        self.peer = peer
        self.service = service
        self.startMicros = startMicros
        self.durationMicros = durationMicros
        self.receivedBytes = receivedBytes
        self.sentBytes = sentBytes
        self.responseFlags = responseFlags
        self.securityPolicy = securityPolicy ?? (reporter == .source ? "unknown" : "none")
        self.localAddress = localAddress
        self.remoteAddress = remoteAddress
        self.channel = channel
    }
}
