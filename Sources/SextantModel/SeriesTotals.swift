/// Cumulative totals of one Istio request series (one combination of Istio's labels), for
/// `istio_requests_total` and the three request histograms.
package struct SeriesTotals: Sendable, Hashable {
    package var reporter: Reporter
    package var source: WorkloadIdentity
    package var destination: WorkloadIdentity
    package var service: ServiceRef
    package var requestProtocol: RequestProtocol
    package var responseCode: Int
    package var grpcStatus: Int?
    package var responseFlags: String
    package var securityPolicy: String
    package var count: Int
    package var durationMillisSum: Double
    package var requestBytesSum: Int64
    package var responseBytesSum: Int64
    /// Cumulative counts per `IstioHistogram.bounds` entry (the `+Inf` bucket is `count`).
    package var durationBuckets: [Int]
    package var requestBytesBuckets: [Int]
    package var responseBytesBuckets: [Int]

    package init(
        reporter: Reporter, source: WorkloadIdentity, destination: WorkloadIdentity, service: ServiceRef,
        requestProtocol: RequestProtocol, responseCode: Int, grpcStatus: Int?, responseFlags: String,
        securityPolicy: String, count: Int, durationMillisSum: Double, requestBytesSum: Int64,
        responseBytesSum: Int64, durationBuckets: [Int], requestBytesBuckets: [Int], responseBytesBuckets: [Int]
    ) {
        self.reporter = reporter
        self.source = source
        self.destination = destination
        self.service = service
        self.requestProtocol = requestProtocol
        self.responseCode = responseCode
        self.grpcStatus = grpcStatus
        self.responseFlags = responseFlags
        self.securityPolicy = securityPolicy
        self.count = count
        self.durationMillisSum = durationMillisSum
        self.requestBytesSum = requestBytesSum
        self.responseBytesSum = responseBytesSum
        self.durationBuckets = durationBuckets
        self.requestBytesBuckets = requestBytesBuckets
        self.responseBytesBuckets = responseBytesBuckets
    }
}
