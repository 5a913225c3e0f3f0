import SextantModel

@testable import SextantServer

/// Istio's families as samples, the way the server built them before it wrote them straight from
/// their totals: what the direct writers are compared with, through the general encoders.
extension IstioMetrics {
    /// `istio_requests_total` and the three request histograms.
    static func families(_ series: [SeriesTotals]) -> [MetricFamily] {
        var requests: [MetricSample] = []
        var parts = [[MetricSample]](repeating: [], count: histograms.count)
        requests.reserveCapacity(series.count)
        for (s, labels) in sorted(series, labels: labels) {
            requests.append(MetricSample(name: Self.requests.name, labels: labels, value: Double(s.count)))
            for (part, (buckets, sum)) in histogramValues(s).enumerated() {
                histogram(histograms[part].name, labels: labels, buckets: buckets, count: s.count, sum: sum, into: &parts[part])
            }
        }
        return zip([Self.requests] + histograms, [requests] + parts).map { definition, samples in
            MetricFamily(name: definition.name, help: definition.help, type: definition.type, samples: samples)
        }
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
        var samples = [[MetricSample]](repeating: [], count: tcp.count)
        for (s, labels) in sorted(series, labels: tcpLabels) {
            for (i, value) in tcpValues(s).enumerated() {
                samples[i].append(MetricSample(name: tcp[i].name, labels: labels, value: value))
            }
        }
        return zip(tcp, samples).map { definition, samples in
            MetricFamily(name: definition.name, help: definition.help, type: definition.type, samples: samples)
        }
    }
}
