import SextantModel

/// Istio's standard request metrics, computed from stored calls, with Istio's labels in Istio's
/// order (reference: istio-telemetry §1.3).
enum IstioMetrics {
    /// One of Istio's families: its name (that of its samples, `_bucket`, `_sum` and `_count`
    /// added for a histogram), type and help.
    struct Definition: Sendable {
        var name: String
        var type: MetricType
        var help: String
    }

    static let requests = Definition(
        name: "istio_requests_total", type: .counter, help: "Requests observed by the mesh's proxies.")
    /// The three request histograms, in the order of `SeriesTotals`' buckets.
    static let histograms = [
        Definition(
            name: "istio_request_duration_milliseconds", type: .histogram,
            help: "Request durations observed by the proxies."),
        Definition(name: "istio_request_bytes", type: .histogram, help: "Request sizes observed by the proxies."),
        Definition(name: "istio_response_bytes", type: .histogram, help: "Response sizes observed by the proxies."),
    ]
    /// Connections opened, closed, bytes sent, bytes received.
    static let tcp = [
        Definition(
            name: "istio_tcp_connections_opened_total", type: .counter, help: "TCP connections opened, as the proxies saw them."),
        Definition(
            name: "istio_tcp_connections_closed_total", type: .counter, help: "TCP connections closed, as the proxies saw them."),
        Definition(
            name: "istio_tcp_sent_bytes_total", type: .counter, help: "Bytes sent to the downstream peer of TCP connections."),
        Definition(
            name: "istio_tcp_received_bytes_total", type: .counter,
            help: "Bytes received from the downstream peer of TCP connections."),
    ]
    static let names = Set(([requests] + histograms + tcp).map(\.name))

    /// A request series' cumulative buckets and sum, in the order of `histograms`.
    static func histogramValues(_ s: SeriesTotals) -> [(buckets: [Int], sum: Double)] {
        [
            (s.durationBuckets, s.durationMillisSum), (s.requestBytesBuckets, Double(s.requestBytesSum)),
            (s.responseBytesBuckets, Double(s.responseBytesSum)),
        ]
    }

    /// Series with their labels, in a kept order: label value by label value.
    static func sorted<T>(_ series: [T], labels: (T) -> [MetricLabel]) -> [(T, [MetricLabel])] {
        series.map { ($0, labels($0)) }.sorted { a, b in
            a.1.lazy.map(\.value).lexicographicallyPrecedes(b.1.lazy.map(\.value))
        }
    }

    /// A TCP series' values, in the order of `tcp`.
    static func tcpValues(_ s: TCPSeriesTotals) -> [Double] {
        [Double(s.connections), Double(s.connections), Double(s.sentBytes), Double(s.receivedBytes)]
    }

    static func tcpLabels(_ s: TCPSeriesTotals) -> [MetricLabel] {
        peerLabels(reporter: s.reporter, source: s.source, destination: s.destination, service: s.service) + [
            MetricLabel("request_protocol", "tcp"),
            MetricLabel("response_flags", s.responseFlags),
            MetricLabel("connection_security_policy", s.securityPolicy),
        ]
    }

    static func labels(_ s: SeriesTotals) -> [MetricLabel] {
        peerLabels(reporter: s.reporter, source: s.source, destination: s.destination, service: s.service) + [
            MetricLabel("request_protocol", s.requestProtocol.label),
            MetricLabel("response_code", String(s.responseCode)),
            MetricLabel("grpc_response_status", s.grpcStatus.map(String.init) ?? ""),
            MetricLabel("response_flags", s.responseFlags),
            MetricLabel("connection_security_policy", s.securityPolicy),
        ]
    }

    /// Istio's reporter, 8 source and 11 destination labels, in Istio's order.
    private static func peerLabels(
        reporter: Reporter, source src: WorkloadIdentity, destination dst: WorkloadIdentity, service: ServiceRef
    ) -> [MetricLabel] {
        [
            MetricLabel("reporter", reporter.label),
            MetricLabel("source_workload", src.workload),
            MetricLabel("source_canonical_service", src.canonicalService),
            MetricLabel("source_canonical_revision", src.canonicalRevision),
            MetricLabel("source_workload_namespace", src.namespace),
            MetricLabel("source_principal", src.principal),
            MetricLabel("source_app", src.app),
            MetricLabel("source_version", src.version),
            MetricLabel("source_cluster", src.cluster),
            MetricLabel("destination_workload", dst.workload),
            MetricLabel("destination_workload_namespace", dst.namespace),
            MetricLabel("destination_principal", dst.principal),
            MetricLabel("destination_app", dst.app),
            MetricLabel("destination_version", dst.version),
            MetricLabel("destination_service", service.host),
            MetricLabel("destination_canonical_service", dst.canonicalService),
            MetricLabel("destination_canonical_revision", dst.canonicalRevision),
            MetricLabel("destination_service_name", service.name),
            MetricLabel("destination_service_namespace", service.namespace),
            MetricLabel("destination_cluster", dst.cluster),
        ]
    }
}
