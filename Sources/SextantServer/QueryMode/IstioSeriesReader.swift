import SextantModel

/// One sample of an instant query: a series' labels and value.
struct PromSample: Sendable, Hashable {
    var labels: [String: String]
    var value: Double
}

/// Turns Istio's series, as a Prometheus-compatible store holds them, back into the call
/// aggregates the graph, the signals and the diff are drawn from — the way Kiali draws its graph
/// from PromQL alone.
///
/// Each metric is read at the window's two ends; a series' calls in the window are its value at
/// the end less its value at the start (none: 0; less than at the start: a reset, so the value at
/// the end). Series that differ only in labels Istio does not define (external labels naming
/// the Sextant that wrote them, `le`) are added up. Calls are counted as Istio's graph counts them:
/// a source proxy's report always; a destination proxy's when its source is unknown or no source
/// report of the same edge exists (the destination is then the only side that saw them).
enum IstioSeriesReader {
    /// Istio's series of one window, at its end (`at`) and its start (`before`).
    struct Window: Sendable {
        var requests: (at: [PromSample], before: [PromSample])
        var durationBuckets: (at: [PromSample], before: [PromSample])
        var durationSum: (at: [PromSample], before: [PromSample])
        var requestBytesSum: (at: [PromSample], before: [PromSample])
        var responseBytesSum: (at: [PromSample], before: [PromSample])
        var tcpOpened: (at: [PromSample], before: [PromSample])
        var tcpSent: (at: [PromSample], before: [PromSample])
        var tcpReceived: (at: [PromSample], before: [PromSample])
    }

    /// The metric names a window is read from, in the order of `Window`'s fields.
    static let metrics = [
        "istio_requests_total", "istio_request_duration_milliseconds_bucket", "istio_request_duration_milliseconds_sum",
        "istio_request_bytes_sum", "istio_response_bytes_sum", "istio_tcp_connections_opened_total",
        "istio_tcp_sent_bytes_total", "istio_tcp_received_bytes_total",
    ]

    /// One of Istio's label sets, without the response code for TCP.
    struct Key: Hashable {
        var reporter: Reporter
        var source: WorkloadIdentity
        var destination: WorkloadIdentity
        var service: ServiceRef
        var requestProtocol: RequestProtocol
        var responseCode: Int
        var grpcStatus: Int?
        var responseFlags: String

        init?(_ labels: [String: String]) {
            guard let reporter = labels["reporter"].flatMap(Self.reporter) else { return nil }
            self.reporter = reporter
            source = Self.identity(labels, "source")
            destination = Self.identity(labels, "destination")
            service = ServiceRef(
                host: labels["destination_service"] ?? "unknown", name: labels["destination_service_name"] ?? "unknown",
                namespace: labels["destination_service_namespace"] ?? "unknown")
            requestProtocol = labels["request_protocol"].flatMap(RequestProtocol.init(label:)) ?? .http
            responseCode = labels["response_code"].flatMap { Int($0) } ?? 0
            grpcStatus = labels["grpc_response_status"].flatMap { Int($0) }
            responseFlags = labels["response_flags"] ?? "-"
        }

        private static func reporter(_ label: String) -> Reporter? {
            Reporter.allCases.first { $0.label == label }
        }

        private static func identity(_ labels: [String: String], _ side: String) -> WorkloadIdentity {
            func label(_ name: String) -> String? { labels["\(side)_\(name)"].flatMap { $0.isEmpty ? nil : $0 } }
            return WorkloadIdentity(
                namespace: label("workload_namespace") ?? "unknown", workload: label("workload") ?? "unknown",
                app: label("app"), version: label("version"), canonicalService: label("canonical_service"),
                canonicalRevision: label("canonical_revision"), principal: label("principal") ?? "unknown",
                cluster: label("cluster") ?? "unknown")
        }

        /// The edge a report is of, whichever side reported it.
        var edge: Edge {
            Edge(source: source, service: service.host, destination: destination.workload, destinationNamespace: destination.namespace,
                 requestProtocol: requestProtocol)
        }
    }

    struct Edge: Hashable {
        var source: WorkloadIdentity
        var service: String
        var destination: String
        var destinationNamespace: String
        var requestProtocol: RequestProtocol
    }

    /// What one label set did in the window.
    private struct Totals {
        var count = 0.0
        /// Calls per bucket upper bound (ms), not cumulative; `.infinity` for the last.
        var buckets: [Double: Double] = [:]
        var durationMillisSum = 0.0
        var requestBytes = 0.0
        var responseBytes = 0.0
    }

    /// The window's calls and TCP connections as the graph's aggregates.
    static func aggregates(_ window: Window) -> [CallAggregate] {
        var requests: [Key: Totals] = [:]
        add(window.requests, to: &requests, \.count)
        var cumulative: [Key: [Double: Double]] = [:]
        for (labels, delta) in deltas(window.durationBuckets) {
            guard let key = Key(labels), let le = labels["le"].flatMap(Self.bound) else { continue }
            cumulative[key, default: [:]][le, default: 0] += delta
        }
        for (key, byBound) in cumulative {
            var below = 0.0
            var buckets: [Double: Double] = [:]
            for bound in byBound.keys.sorted() {
                let total = byBound[bound]!
                buckets[bound] = max(0, total - below)
                below = max(below, total)
            }
            requests[key, default: Totals()].buckets = buckets
        }
        add(window.durationSum, to: &requests, \.durationMillisSum)
        add(window.requestBytesSum, to: &requests, \.requestBytes)
        add(window.responseBytesSum, to: &requests, \.responseBytes)
        var connections: [Key: Totals] = [:]
        add(window.tcpOpened, to: &connections, \.count)
        add(window.tcpReceived, to: &connections, \.requestBytes)
        add(window.tcpSent, to: &connections, \.responseBytes)
        let reportedBySource = Set(
            (requests.filter { $0.value.count > 0 } + connections.filter { $0.value.count > 0 }).map(\.key)
                .filter { $0.reporter == .source }.map(\.edge))
        var result: [CallAggregate] = []
        for (key, totals) in requests {
            let count = Int(totals.count.rounded())
            guard count > 0 else { continue }
            result.append(aggregate(key, totals, count: count, reportedBySource: reportedBySource))
        }
        for (key, totals) in connections {
            let count = Int(totals.count.rounded())
            guard count > 0 else { continue }
            result.append(aggregate(key, totals, count: count, reportedBySource: reportedBySource))
        }
        return result
    }

    /// Adds each series' increase to its label set's `field`.
    private static func add(
        _ pair: (at: [PromSample], before: [PromSample]), to totals: inout [Key: Totals],
        _ field: WritableKeyPath<Totals, Double>
    ) {
        for (labels, delta) in deltas(pair) {
            guard let key = Key(labels) else { continue }
            totals[key, default: Totals()][keyPath: field] += delta
        }
    }

    private static func aggregate(_ key: Key, _ totals: Totals, count: Int, reportedBySource: Set<Edge>) -> CallAggregate {
        let isSource = key.reporter == .source
        let proxy = isSource ? key.source : key.destination
        let other = isSource ? key.destination : key.source
        // A destination report stands in for the calls only where no source report does.
        let paired = !isSource && key.source.isKnown && reportedBySource.contains(key.edge)
        let durationMicros = totals.durationMillisSum * 1_000
        return CallAggregate(
            reporter: key.reporter, proxy: proxy, peer: other.isKnown ? other : nil, service: key.service,
            requestProtocol: key.requestProtocol, responseCode: key.responseCode, grpcStatus: key.grpcStatus,
            responseFlags: key.responseFlags, paired: paired,
            latency: key.requestProtocol == .tcp ? LatencySketch() : sketch(totals.buckets, sumMicros: durationMicros),
            sources: [], count: count, durationMicrosSum: Int64(durationMicros.rounded()),
            requestBytes: Int64(totals.requestBytes.rounded()), responseBytes: Int64(totals.responseBytes.rounded()))
    }

    /// Calls spread evenly within each bucket, as `histogram_quantile` interpolates (the last,
    /// unbounded bucket at the highest finite bound).
    static func sketch(_ buckets: [Double: Double], sumMicros: Double) -> LatencySketch {
        var sketch = LatencySketch()
        let bounds = buckets.keys.sorted()
        var lower = 0.0
        for bound in bounds {
            let calls = Int(buckets[bound]!.rounded())
            defer { if bound.isFinite { lower = bound } }
            guard calls > 0 else { continue }
            let upper = bound.isFinite ? bound : lower
            let points = min(calls, 32)
            for point in 0..<points {
                let share = calls / points + (point < calls % points ? 1 : 0)
                let millis = lower + (upper - lower) * (Double(point) + 0.5) / Double(points)
                sketch.add(
                    index: LatencySketch.index(micros: Int64((millis * 1_000).rounded())), count: share, sumMicros: 0)
            }
        }
        return LatencySketch(counts: sketch.counts, sumMicros: sumMicros)
    }

    private static func bound(_ text: String) -> Double? {
        text == "+Inf" ? .infinity : Double(text)
    }

    /// Each series' increase between the two instants, by its labels (without `__name__`).
    static func deltas(_ pair: (at: [PromSample], before: [PromSample])) -> [([String: String], Double)] {
        var before: [[String: String]: Double] = [:]
        for sample in pair.before { before[sample.labels.filter { $0.key != "__name__" }] = sample.value }
        return pair.at.map { sample in
            let labels = sample.labels.filter { $0.key != "__name__" }
            let start = before[labels] ?? 0
            return (labels, sample.value >= start ? sample.value - start : sample.value)
        }
    }
}
