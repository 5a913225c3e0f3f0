import SextantModel

/// Istio's standard request metrics, computed from stored calls, with Istio's labels in Istio's
/// order (reference: istio-telemetry §1.3).
enum IstioMetrics {
    static func families(_ series: [SeriesTotals]) -> [MetricFamily] {
        var requests: [MetricSample] = []
        var duration: [MetricSample] = []
        var requestBytes: [MetricSample] = []
        var responseBytes: [MetricSample] = []
        requests.reserveCapacity(series.count)
        for s in series.sorted(by: order) {
            let labels = labels(s)
            requests.append(
                MetricSample(name: "istio_requests_total", labels: labels, value: Double(s.count)))
            histogram(
                "istio_request_duration_milliseconds", labels: labels, buckets: s.durationBuckets, count: s.count,
                sum: s.durationMillisSum, into: &duration)
            histogram(
                "istio_request_bytes", labels: labels, buckets: s.requestBytesBuckets, count: s.count,
                sum: Double(s.requestBytesSum), into: &requestBytes)
            histogram(
                "istio_response_bytes", labels: labels, buckets: s.responseBytesBuckets, count: s.count,
                sum: Double(s.responseBytesSum), into: &responseBytes)
        }
        return [
            MetricFamily(
                name: "istio_requests_total", help: "Requests observed by the mesh's proxies.", type: .counter,
                samples: requests),
            MetricFamily(
                name: "istio_request_duration_milliseconds", help: "Request durations observed by the proxies.",
                type: .histogram, samples: duration),
            MetricFamily(
                name: "istio_request_bytes", help: "Request sizes observed by the proxies.", type: .histogram,
                samples: requestBytes),
            MetricFamily(
                name: "istio_response_bytes", help: "Response sizes observed by the proxies.", type: .histogram,
                samples: responseBytes),
        ]
    }

    private static func order(_ a: SeriesTotals, _ b: SeriesTotals) -> Bool {
        labels(a).map(\.value).lexicographicallyPrecedes(labels(b).map(\.value))
    }

    private static func histogram(
        _ name: String, labels: [MetricLabel], buckets: [Int], count: Int, sum: Double,
        into samples: inout [MetricSample]
    ) {
        for (bound, n) in zip(IstioHistogram.bounds, buckets) {
            samples.append(
                MetricSample(
                    name: name + "_bucket", labels: labels + [MetricLabel("le", ExpositionEncoder.formatFloat(bound))],
                    value: Double(n)))
        }
        samples.append(
            MetricSample(
                name: name + "_bucket", labels: labels + [MetricLabel("le", "+Inf")], value: Double(count)))
        samples.append(MetricSample(name: name + "_sum", labels: labels, value: sum))
        samples.append(MetricSample(name: name + "_count", labels: labels, value: Double(count)))
    }

    /// `istio_tcp_*`: each stored connection is a closed one, so opened equals closed.
    static func tcpFamilies(_ series: [TCPSeriesTotals]) -> [MetricFamily] {
        var opened: [MetricSample] = []
        var closed: [MetricSample] = []
        var sent: [MetricSample] = []
        var received: [MetricSample] = []
        // In a kept order, as the request series are.
        let labelled = series.map { ($0, tcpLabels($0)) }.sorted { a, b in
            a.1.map(\.value).lexicographicallyPrecedes(b.1.map(\.value))
        }
        for (s, labels) in labelled {
            opened.append(MetricSample(name: "istio_tcp_connections_opened_total", labels: labels, value: Double(s.connections)))
            closed.append(MetricSample(name: "istio_tcp_connections_closed_total", labels: labels, value: Double(s.connections)))
            sent.append(MetricSample(name: "istio_tcp_sent_bytes_total", labels: labels, value: Double(s.sentBytes)))
            received.append(
                MetricSample(name: "istio_tcp_received_bytes_total", labels: labels, value: Double(s.receivedBytes)))
        }
        return [
            MetricFamily(
                name: "istio_tcp_connections_opened_total", help: "TCP connections opened, as the proxies saw them.",
                type: .counter, samples: opened),
            MetricFamily(
                name: "istio_tcp_connections_closed_total", help: "TCP connections closed, as the proxies saw them.",
                type: .counter, samples: closed),
            MetricFamily(
                name: "istio_tcp_sent_bytes_total", help: "Bytes sent to the downstream peer of TCP connections.",
                type: .counter, samples: sent),
            MetricFamily(
                name: "istio_tcp_received_bytes_total", help: "Bytes received from the downstream peer of TCP connections.",
                type: .counter, samples: received),
        ]
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
