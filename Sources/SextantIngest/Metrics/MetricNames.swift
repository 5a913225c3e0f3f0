package import SextantModel

/// Prometheus naming for metrics from other systems.
package enum MetricNames {
    /// An Envoy stat name as `/stats/prometheus` writes it: `cluster.upstream_rq` → `envoy_cluster_upstream_rq`;
    /// Istio's stats (`istiocustom.istio_requests_total`) lose their namespace instead.
    package static func envoy(_ stat: String) -> String {
        if stat.hasPrefix("istiocustom.") { return sanitize(String(stat.dropFirst("istiocustom.".count))) }
        return "envoy_" + sanitize(stat)
    }

    /// Replaces every character outside `[a-zA-Z0-9_:]` with `_`, and a leading digit.
    package static func sanitize(_ name: String) -> String {
        var out = ""
        out.reserveCapacity(name.utf8.count)
        for (i, c) in name.unicodeScalars.enumerated() {
            let ok = (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || c == "_" || c == ":" || (i > 0 && c >= "0" && c <= "9")
            out.unicodeScalars.append(ok ? c : "_")
        }
        return out.isEmpty ? "_" : out
    }

    /// A label name: like `sanitize`, without `:`.
    package static func label(_ name: String) -> String {
        sanitize(name).replacingColons()
    }

    /// The labels that name the reporting proxy (`namespace`, `workload`, `pod`).
    package static func proxyLabels(_ identity: WorkloadIdentity, pod: String?) -> [MetricLabelPair] {
        var labels = [MetricLabelPair("namespace", identity.namespace), MetricLabelPair("workload", identity.workload)]
        if let pod { labels.append(MetricLabelPair("pod", pod)) }
        return labels
    }

    /// Adds `extra` labels a series does not already carry.
    package static func merge(_ labels: [MetricLabelPair], adding extra: [MetricLabelPair]) -> [MetricLabelPair] {
        var names = Set(labels.map(\.name))
        var out = labels
        for label in extra where !names.contains(label.name) {
            out.append(label)
            names.insert(label.name)
        }
        return out
    }
}

extension String {
    fileprivate func replacingColons() -> String {
        String(unicodeScalars.map { $0 == ":" ? "_" : Character($0) })
    }
}
