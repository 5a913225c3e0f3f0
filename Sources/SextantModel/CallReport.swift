/// One observed L7 call as one proxy reported it.
///
/// Access-log entries and proxy spans both become `CallReport`s. The reporting proxy knows itself
/// and the service it called (outbound) or was called for (inbound); the workload on the other
/// side (`peer`) is often learned only later, by pairing with the other proxy's report.
package struct CallReport: Sendable, Hashable {
    package var reporter: Reporter
    /// The reporting proxy's own workload.
    package var proxy: WorkloadIdentity
    /// The other side, when the report itself names it.
    package var peer: WorkloadIdentity?
    /// The destination service.
    package var service: ServiceRef
    package var requestProtocol: RequestProtocol
    /// Start of the call, microseconds since the Unix epoch.
    package var startMicros: Int64
    package var durationMicros: Int64
    /// HTTP status; 0 when no response was sent.
    package var responseCode: Int
    package var grpcStatus: Int?
    /// Envoy's short response flags joined by `,`; `-` for none.
    package var responseFlags: String
    package var requestBytes: Int64
    package var responseBytes: Int64
    /// Istio's connection_security_policy: `unknown` (client side), `none` or `mutual_tls`.
    package var securityPolicy: String
    /// `x-request-id`, shared by both proxies of one call.
    package var requestID: String?
    package var traceID: TraceID?
    package var spanID: SpanID?
    package var parentSpanID: SpanID?
    /// The reporting side's address of the connection: inbound `downstream_local_address`,
    /// outbound `upstream_local_address`.
    package var localAddress: String?
    /// The other side's address: inbound `downstream_remote_address`, outbound `upstream_host`.
    package var remoteAddress: String?
    package var channel: IngestChannel

    package init(
        reporter: Reporter,
        proxy: WorkloadIdentity,
        peer: WorkloadIdentity? = nil,
        service: ServiceRef,
        requestProtocol: RequestProtocol = .http,
        startMicros: Int64,
        durationMicros: Int64,
        responseCode: Int,
        grpcStatus: Int? = nil,
        responseFlags: String = "-",
        requestBytes: Int64 = 0,
        responseBytes: Int64 = 0,
        securityPolicy: String? = nil,
        requestID: String? = nil,
        traceID: TraceID? = nil,
        spanID: SpanID? = nil,
        parentSpanID: SpanID? = nil,
        localAddress: String? = nil,
        remoteAddress: String? = nil,
        channel: IngestChannel
    ) {
        self.reporter = reporter
        self.proxy = proxy
        self.peer = peer
        self.service = service
        self.requestProtocol = requestProtocol
        self.startMicros = startMicros
        self.durationMicros = durationMicros
        self.responseCode = responseCode
        self.grpcStatus = grpcStatus
        self.responseFlags = responseFlags
        self.requestBytes = requestBytes
        self.responseBytes = responseBytes
        self.securityPolicy = securityPolicy ?? (reporter == .source ? "unknown" : "none")
        self.requestID = requestID
        self.traceID = traceID
        self.spanID = spanID
        self.parentSpanID = parentSpanID
        self.localAddress = localAddress
        self.remoteAddress = remoteAddress
        self.channel = channel
    }
}
