import SextantAnalytics
import SextantModel
import SextantStore

/// Reads the saturation gauges of ingested Envoy stats (`envoy_cluster_upstream_rq_active` and
/// friends, labelled with the proxy's `workload` and the `cluster_name`) per workload and service.
enum ProxyGaugeReader {
    /// The Envoy stats this reader uses.
    static let names: Set<String> = [
        "envoy_cluster_upstream_rq_active", "envoy_cluster_upstream_rq_pending_active", "envoy_cluster_upstream_cx_active",
        "envoy_cluster_upstream_rq_pending_overflow", "envoy_cluster_upstream_cx_overflow",
    ]

    static func gauges(_ samples: [LatestSample], by grouping: GoldenSignals.Grouping) -> [String: GoldenSignals.ProxyGauges] {
        var out: [String: GoldenSignals.ProxyGauges] = [:]
        for sample in samples where names.contains(sample.series.name) {
            let labels = Dictionary(sample.series.labels.map { ($0.name, $0.value) }, uniquingKeysWith: { a, _ in a })
            guard let clusterName = labels["cluster_name"] else { continue }
            let parts = clusterName.split(separator: "|", omittingEmptySubsequences: false)
            guard parts.count == 4 else { continue }
            let key: String
            switch (grouping, parts[0]) {
            case (.workload, "inbound"):
                guard let workload = labels["workload"] else { continue }
                key = workload
            case (.service, "outbound"):
                key = String(parts[3])
            default:
                continue
            }
            var g = out[key, default: GoldenSignals.ProxyGauges()]
            switch sample.series.name {
            case "envoy_cluster_upstream_rq_active": g.activeRequests += sample.value
            case "envoy_cluster_upstream_rq_pending_active": g.pendingRequests += sample.value
            case "envoy_cluster_upstream_cx_active": g.activeConnections += sample.value
            default: g.overflows += sample.value
            }
            out[key] = g
        }
        return out
    }
}
