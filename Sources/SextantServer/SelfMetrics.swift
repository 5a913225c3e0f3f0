import Synchronization

/// Sextant's own counters, exposed on `/metrics` as `sextant_*`.
package final class SelfMetrics: Sendable {
    /// A counter's name and labels.
    struct Key: Hashable {
        var name: String
        var labels: [MetricLabel]
    }

    private let counters = Mutex([Key: Double]())

    package init() {}

    /// Adds to a counter.
    package func add(_ name: String, _ labels: [(String, String)] = [], _ value: Double = 1) {
        guard value != 0 else { return }
        let key = Key(name: name, labels: labels.map { MetricLabel($0.0, $0.1) })
        counters.withLock { $0[key, default: 0] += value }
    }

    /// Every counter as families, grouped by name.
    func families(help: [String: String]) -> [MetricFamily] {
        let snapshot = counters.withLock { $0 }
        var byName: [String: [MetricSample]] = [:]
        for (key, value) in snapshot {
            byName[key.name, default: []].append(MetricSample(name: key.name, labels: key.labels, value: value))
        }
        return byName.keys.sorted().map { name in
            MetricFamily(
                name: name, help: help[name], type: .counter,
                samples: byName[name]!.sorted { $0.labels.map(\.value) .lexicographicallyPrecedes($1.labels.map(\.value)) })
        }
    }
}
