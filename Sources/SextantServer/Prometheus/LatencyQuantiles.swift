import SextantModel

/// `sextant_request_duration_quantile_seconds`: latency quantiles of HTTP and gRPC calls per
/// reporter and destination over trailing windows, from the calls' mergeable sketches (relative
/// error at most 1 %), where `histogram_quantile` over Istio's buckets can only interpolate inside
/// a bucket (between 250 ms and 500 ms, say).
///
/// A window is whole minutes: `1m` the last complete minute, `5m` the last five, so that each is
/// read from the minute rollups alone, however busy the mesh.
enum LatencyQuantiles {
    static let name = "sextant_request_duration_quantile_seconds"
    static let help =
        "Latency quantile of HTTP and gRPC requests over the last complete minute(s) (window), from Sextant's "
        + "sketches (relative error at most 1 %), per reporter and destination."
    /// The windows, in minutes, and their label.
    static let windows: [(minutes: Int64, label: String)] = [(1, "1m"), (5, "5m")]
    /// The quantiles, labelled `percentile` ("50", "90", "99"): `quantile` is a summary's label,
    /// and promtool holds a gauge to that.
    static let quantiles: [(q: Double, label: String)] = [(0.5, "50"), (0.9, "90"), (0.99, "99")]

    /// The windows that end at the minute boundary at or before `nowMicros`, as µs ranges.
    static func ranges(nowMicros: Int64) -> [(label: String, from: Int64, to: Int64)] {
        let minute: Int64 = 60_000_000
        let end = nowMicros / minute * minute
        return windows.map { ($0.label, end - $0.minutes * minute, end) }
    }

    /// The family: one gauge per destination, reporter, window and quantile with calls in the window.
    static func family(windows: [(label: String, aggregates: [CallAggregate])]) -> MetricFamily {
        struct Key: Hashable {
            var reporter: Reporter
            var destination: WorkloadIdentity
            var service: ServiceRef
        }
        var samples: [MetricSample] = []
        for window in windows {
            var sketches: [Key: LatencySketch] = [:]
            for a in window.aggregates where a.requestProtocol != .tcp {
                let key = Key(reporter: a.reporter, destination: a.destinationWorkload ?? .unknown, service: a.service)
                sketches[key, default: LatencySketch()].merge(a.latency)
            }
            let keys = sketches.keys.sorted {
                ($0.destination.namespace, $0.destination.workload, $0.service.host, $0.reporter.label)
                    < ($1.destination.namespace, $1.destination.workload, $1.service.host, $1.reporter.label)
            }
            for key in keys {
                let sketch = sketches[key]!
                let labels = [
                    MetricLabel("reporter", key.reporter.label),
                    MetricLabel("destination_workload", key.destination.workload),
                    MetricLabel("destination_workload_namespace", key.destination.namespace),
                    MetricLabel("destination_canonical_service", key.destination.canonicalService),
                    MetricLabel("destination_service", key.service.host),
                    MetricLabel("destination_service_name", key.service.name),
                    MetricLabel("destination_service_namespace", key.service.namespace),
                    MetricLabel("window", window.label),
                ]
                for quantile in quantiles {
                    guard let micros = sketch.quantile(quantile.q) else { continue }
                    samples.append(
                        MetricSample(
                            name: name, labels: labels + [MetricLabel("percentile", quantile.label)], value: micros / 1_000_000))
                }
            }
        }
        return MetricFamily(name: name, help: help, type: .gauge, samples: samples)
    }
}
