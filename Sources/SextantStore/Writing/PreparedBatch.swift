package import SextantModel

/// A batch turned into column values before it reaches the writer: spans encoded as a block,
/// structured columns encoded as JSON text, latency buckets and rollup placements computed, metric
/// labels encoded into their series key. Everything here needs no database, so receivers build it on their own task and the
/// writer's transaction only runs statements.
package struct PreparedBatch: Sendable {
    /// The spans as one block, encoded by the receiver so that the writer only inserts it; the
    /// spans themselves are not kept (a queued batch holds only their compressed form).
    let spanBlock: PreparedSpanBlock?
    /// The keys that tell a resend, in the block's order of spans.
    var spanKeys: [UInt64]
    var requests: [PreparedRequest]
    var connections: [PreparedConnection]
    var logs: [PreparedLog]
    /// In the batch's order: `WriteSummary.seriesLimitedPoints` are indices into it.
    var metrics: [PreparedMetric]

    /// Records that will be stored.
    package let recordCount: Int
    /// About how much memory the prepared records hold, in bytes: what the queue and a commit are
    /// bounded by besides records.
    package let estimatedBytes: Int

    /// Prepares every record of `batch` (its `rejected` records are not the writer's business).
    package init(_ batch: IngestBatch) {
        let sorted = SpanBlock.sortedForBlock(batch.spans)
        spanKeys = sorted.map(RecentSpanKeys.key)
        spanBlock = PreparedSpanBlock(sorted: sorted)
        requests = batch.requests.withUnsafeBufferPointer { reports in
            reports.indices.map { PreparedRequest(reports.baseAddress! + $0) }
        }
        connections = batch.connections.map(PreparedConnection.init)
        logs = batch.logs.map(PreparedLog.init)
        metrics = batch.metrics.map(PreparedMetric.init)
        recordCount = batch.recordCount
        var bytes = spanKeys.count * 8 + (spanBlock?.data.count ?? 0)
        for request in requests { bytes += request.estimatedBytes }
        for connection in connections { bytes += connection.estimatedBytes }
        for log in logs { bytes += log.estimatedBytes }
        for metric in metrics { bytes += metric.estimatedBytes }
        estimatedBytes = bytes
    }
}

/// What a record costs beyond its strings' bytes: the fixed-width fields and the string headers.
private let recordOverheadBytes = 96

// MARK: - Calls

/// One call report with what storing it needs that needs no database.
struct PreparedRequest: Sendable {
    var reporter: Reporter
    var proxy: WorkloadIdentity
    var peer: WorkloadIdentity?
    var service: ServiceRef
    var requestProtocol: Int
    var startMicros: Int64
    var durationMicros: Int64
    var latencyBucket: Int
    var responseCode: Int
    var grpcStatus: Int?
    var responseFlags: String
    var securityPolicy: String
    var requestBytes: Int64
    var responseBytes: Int64
    var requestID: String?
    /// `TextHash` of the request id and of the addresses: what the writer compares and keeps.
    var requestIDHash: UInt64?
    var localAddressHash: UInt64?
    var remoteAddressHash: UInt64?
    var traceID: TraceID?
    var spanID: SpanID?
    var parentSpanID: SpanID?
    var localAddress: String?
    var remoteAddress: String?
    var sources: Int
    /// Where the call falls in the rollups as reported (it may merge into a stored call that differs).
    var placement: RollupDeltas.Placement

    /// The one place the writer reads a call's ids. The report is read in place, field by field:
    /// passed whole, it would be copied, each of its strings retained.
    init(_ report: UnsafePointer<CallReport>) {
        reporter = report.pointee.reporter
        proxy = report.pointee.proxy
        peer = report.pointee.peer
        service = report.pointee.service
        requestProtocol = report.pointee.requestProtocol.rawValue
        startMicros = report.pointee.startMicros
        durationMicros = report.pointee.durationMicros
        latencyBucket = LatencySketch.index(micros: report.pointee.durationMicros)
        responseCode = report.pointee.responseCode
        grpcStatus = report.pointee.grpcStatus
        responseFlags = report.pointee.responseFlags
        securityPolicy = report.pointee.securityPolicy
        requestBytes = report.pointee.requestBytes
        responseBytes = report.pointee.responseBytes
        requestID = report.pointee.requestID
        traceID = report.pointee.traceID
        spanID = report.pointee.spanID
        parentSpanID = report.pointee.parentSpanID
        localAddress = report.pointee.localAddress
        remoteAddress = report.pointee.remoteAddress
        requestIDHash = requestID.map(TextHash.of)
        localAddressHash = localAddress.map(TextHash.of)
        remoteAddressHash = remoteAddress.map(TextHash.of)
        sources = report.pointee.channel.rawValue
        placement = RollupDeltas.Placement(
            measures: .init(
                startMicros: startMicros, durationMicros: durationMicros, requestBytes: requestBytes,
                responseBytes: responseBytes, isTCP: report.pointee.requestProtocol == .tcp))
    }

    init(_ report: CallReport) {
        self = withUnsafePointer(to: report) { PreparedRequest($0) }
    }

    var estimatedBytes: Int {
        recordOverheadBytes * 2 + proxy.estimatedBytes + (peer?.estimatedBytes ?? 0) + service.host.utf8.count
            + service.name.utf8.count + service.namespace.utf8.count + responseFlags.utf8.count
            + securityPolicy.utf8.count + (requestID?.utf8.count ?? 0) + (localAddress?.utf8.count ?? 0)
            + (remoteAddress?.utf8.count ?? 0)
    }
}

/// One TCP connection report with the columns of its `tcp_connections` row that need no database.
struct PreparedConnection: Sendable {
    var connection: TCPConnection
    var latencyBucket: Int
    var placement: RollupDeltas.Placement

    init(_ c: TCPConnection) {
        connection = c
        latencyBucket = LatencySketch.index(micros: c.durationMicros)
        placement = RollupDeltas.Placement(
            measures: .init(
                startMicros: c.startMicros, durationMicros: c.durationMicros, requestBytes: c.receivedBytes,
                responseBytes: c.sentBytes, isTCP: true))
    }

    var estimatedBytes: Int {
        recordOverheadBytes * 2 + connection.proxy.estimatedBytes + (connection.peer?.estimatedBytes ?? 0)
            + connection.service.host.utf8.count + connection.responseFlags.utf8.count
            + connection.securityPolicy.utf8.count + (connection.localAddress?.utf8.count ?? 0)
            + (connection.remoteAddress?.utf8.count ?? 0)
    }
}

// MARK: - Logs and metrics

/// The columns of one `logs` row.
struct PreparedLog: Sendable {
    var timeMicros: Int64
    var service: String
    var severityNumber: Int
    var severityText: String
    var body: String
    var traceID: String?
    var spanID: String?
    var attributes: String

    /// The one place the writer reads a log record's ids and attributes.
    init(_ log: LogRecord) {
        timeMicros = log.timeMicros
        service = log.service
        severityNumber = log.severityNumber
        severityText = log.severityText
        body = log.body
        traceID = log.traceID
        spanID = log.spanID
        attributes = SpanJSON.encode(log.attributes)
    }

    var estimatedBytes: Int {
        recordOverheadBytes + service.utf8.count + severityText.utf8.count + body.utf8.count
            + (traceID?.utf8.count ?? 0) + (spanID?.utf8.count ?? 0) + attributes.utf8.count
    }
}

/// One metric point with its series key (name and labels as stored).
struct PreparedMetric: Sendable {
    var point: MetricPoint
    var key: MetricSeriesKey

    init(_ point: MetricPoint) {
        self.point = point
        key = MetricSeriesKey(point)
    }

    var estimatedBytes: Int {
        recordOverheadBytes + point.name.utf8.count * 2 + point.family.utf8.count
            + point.labels.reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count + 32 }
    }
}

extension WorkloadIdentity {
    /// About how many bytes the identity's strings hold.
    var estimatedBytes: Int {
        namespace.utf8.count + workload.utf8.count + app.utf8.count + version.utf8.count
            + canonicalService.utf8.count + canonicalRevision.utf8.count + principal.utf8.count + cluster.utf8.count
    }
}
