#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// One sample of a named metric series, whatever protocol brought it (statsd, Envoy metrics
/// service, OTLP metrics, Prometheus remote write, scrapes).
///
/// `name` is the Prometheus sample name (`envoy_cluster_upstream_rq`, `x_bucket`, `x_sum`); `family`
/// the metric it belongs to (`x` for a histogram's samples).
package struct MetricPoint: Sendable, Hashable {
    package enum Kind: Int, Sendable, Hashable {
        case counter = 0
        case gauge = 1
        case histogram = 2
        case summary = 3
        case untyped = 4

        package var label: String {
            switch self {
            case .counter: "counter"
            case .gauge: "gauge"
            case .histogram: "histogram"
            case .summary: "summary"
            case .untyped: "untyped"
            }
        }
    }

    /// How a counter's value is to be read.
    package enum Temporality: Int, Sendable, Hashable {
        /// The running total since the sender started (it may reset).
        case cumulative = 0
        /// The increase since the sender's previous report.
        case delta = 1
    }

    package var name: String
    package var family: String
    package var kind: Kind
    /// Label pairs, sorted by name (bytes), each name once (the first given), without `__name__`.
    package var labels: [MetricLabelPair]
    package var value: Double
    /// Milliseconds since the epoch.
    package var timestampMs: Int64
    package var temporality: Temporality

    /// - Parameter labelsAreCanonical: the caller has checked that `labels` are sorted by name,
    ///   each name once (remote write's decoder does, as it reads them).
    package init(
        name: String, family: String? = nil, kind: Kind, labels: [MetricLabelPair], value: Double, timestampMs: Int64,
        temporality: Temporality = .cumulative, labelsAreCanonical: Bool = false
    ) {
        self.name = name
        self.family = family ?? name
        self.kind = kind
        self.labels = labelsAreCanonical ? labels : MetricLabelPair.canonical(labels)
        self.value = value
        self.timestampMs = timestampMs
        self.temporality = temporality
    }

    /// Whether the value accumulates (counters, and a histogram's or summary's buckets, sums and counts).
    package var isCumulative: Bool {
        switch kind {
        case .counter: true
        case .histogram, .summary: !labels.contains { $0.name == "quantile" }
        case .gauge, .untyped: false
        }
    }
}

/// A label name and value.
package struct MetricLabelPair: Sendable, Hashable {
    package var name: String
    package var value: String

    package init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
}

extension MetricLabelPair {
    /// Labels sorted by name, each name once (the first given of a repeated one). Most senders
    /// sort them already: then the array is shared, not copied.
    package static func canonical(_ labels: [MetricLabelPair]) -> [MetricLabelPair] {
        if labels.indices.dropFirst().allSatisfy({ precedes(labels[$0 - 1].name, labels[$0].name) }) { return labels }
        var unique: [MetricLabelPair] = []
        unique.reserveCapacity(labels.count)
        // Sorting is stable, so of repeated names the first one given comes first.
        for label in labels.sorted(by: { precedes($0.name, $1.name) }) where unique.last?.name != label.name {
            unique.append(label)
        }
        return unique
    }

    /// Whether label name `a` sorts before `b`: by their UTF-8 bytes, as Prometheus orders label
    /// names (one `memcmp`, no Unicode normalization).
    @inlinable
    package static func precedes(_ a: String, _ b: String) -> Bool {
        // Native strings lend their bytes in place; others are compared byte by byte.
        let order = a.utf8.withContiguousStorageIfAvailable { x in
            b.utf8.withContiguousStorageIfAvailable { y in
                let common = min(x.count, y.count)
                let order = common == 0 ? 0 : memcmp(x.baseAddress!, y.baseAddress!, common)
                return order != 0 ? order < 0 : x.count < y.count
            }
        }
        return (order ?? nil) ?? a.utf8.lexicographicallyPrecedes(b.utf8)
    }
}
