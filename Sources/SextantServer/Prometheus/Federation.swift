import Foundation

/// Renders the samples picked by `match[]` selectors the way Prometheus's `/federate` does.
///
/// Output is text 0.0.4 only (Prometheus's federation negotiates protobuf or text 0.0.4, never
/// OpenMetrics): series are grouped and sorted by sample name, each name is introduced by
/// `# TYPE <name> untyped`, label sets are sorted, and every line carries a millisecond timestamp.
/// See https://prometheus.io/docs/prometheus/latest/federation/.
package enum Federation {
    /// Bit pattern of Prometheus's staleness marker, which federation never exposes.
    static let staleNaNBits: UInt64 = 0x7ff0_0000_0000_0002

    /// Renders every sample matched by at least one selector.
    ///
    /// - Parameters:
    ///   - externalLabels: Added to every series that does not already carry the label name.
    ///   - now: Milliseconds since the epoch, used for samples without a timestamp.
    package static func render(
        _ families: [MetricFamily],
        selectors: [SeriesSelector],
        externalLabels: [MetricLabel] = [],
        now: Int64 = currentMilliseconds()
    ) -> String {
        let bytes = renderBytes(families, selectors: selectors, externalLabels: externalLabels, now: now)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Renders every sample matched by at least one selector, as UTF-8 bytes.
    package static func renderBytes(
        _ families: [MetricFamily],
        selectors: [SeriesSelector],
        externalLabels: [MetricLabel] = [],
        now: Int64 = currentMilliseconds()
    ) -> [UInt8] {
        let picked = selectedSeries(families, selectors: selectors, externalLabels: externalLabels, now: now)
        var out: [UInt8] = []
        out.reserveCapacity(picked.reduce(0) { total, series in
            total + ExpositionEncoder.estimatedLineLength(name: series.name, labels: series.labels)
        })
        var currentName: String?
        for series in picked {
            if series.name != currentName {
                currentName = series.name
                out.append(contentsOf: "# TYPE ".utf8)
                out.append(contentsOf: series.name.utf8)
                out.append(contentsOf: " untyped\n".utf8)
            }
            out.append(contentsOf: series.name.utf8)
            if !series.labels.isEmpty {
                out.append(UInt8(ascii: "{"))
                for (position, label) in series.labels.enumerated() {
                    if position > 0 {
                        out.append(UInt8(ascii: ","))
                    }
                    out.append(contentsOf: label.name.utf8)
                    out.append(contentsOf: "=\"".utf8)
                    ExpositionEncoder.appendEscaped(label.value, escapingQuotes: true, to: &out)
                    out.append(UInt8(ascii: "\""))
                }
                out.append(UInt8(ascii: "}"))
            }
            out.append(UInt8(ascii: " "))
            ExpositionEncoder.appendFloat(series.value, canonical: false, to: &out)
            out.append(UInt8(ascii: " "))
            out.append(contentsOf: String(series.timestampMs).utf8)
            out.append(UInt8(ascii: "\n"))
        }
        return out
    }

    /// The current wall-clock time in milliseconds since the Unix epoch.
    package static func currentMilliseconds() -> Int64 {
        Int64((Date().timeIntervalSince1970 * 1000).rounded(.down))
    }

    // MARK: - Selection

    private struct Series {
        var name: String
        var labels: [MetricLabel]
        var value: Double
        var timestampMs: Int64
        var position: Int
    }

    /// The union of all selectors' matches, one entry per series (the newest), in output order.
    private static func selectedSeries(
        _ families: [MetricFamily],
        selectors: [SeriesSelector],
        externalLabels: [MetricLabel],
        now: Int64
    ) -> [Series] {
        var picked: [Series] = []
        for family in families {
            for sample in family.samples where sample.value.bitPattern != staleNaNBits {
                guard selectors.contains(where: { $0.matches(sample) }) else {
                    continue
                }
                picked.append(Series(
                    name: sample.name,
                    labels: normalizedLabels(sample.labels, adding: externalLabels),
                    value: sample.value,
                    timestampMs: sample.timestampMs ?? now,
                    position: picked.count
                ))
            }
        }
        picked.sort { left, right in
            if left.name != right.name {
                return left.name < right.name
            }
            if let order = compare(left.labels, right.labels) {
                return order
            }
            // The same series twice: keep the newest sample first, then the earlier input.
            if left.timestampMs != right.timestampMs {
                return left.timestampMs > right.timestampMs
            }
            return left.position < right.position
        }
        var unique: [Series] = []
        unique.reserveCapacity(picked.count)
        for series in picked {
            if let last = unique.last, last.name == series.name, last.labels == series.labels {
                continue
            }
            unique.append(series)
        }
        return unique
    }

    /// Labels sorted by name, without `__name__` or empty values (absent and empty are the same
    /// series in Prometheus), plus the external labels the series does not set itself.
    private static func normalizedLabels(
        _ labels: [MetricLabel],
        adding externalLabels: [MetricLabel]
    ) -> [MetricLabel] {
        var result = labels.filter { !$0.value.isEmpty && $0.name != SeriesSelector.metricNameLabel }
        for external in externalLabels where !external.value.isEmpty {
            if !result.contains(where: { $0.name == external.name }) {
                result.append(external)
            }
        }
        let sorted = result.indices.dropFirst().allSatisfy { result[$0 - 1].name <= result[$0].name }
        if !sorted {
            result.sort { $0.name < $1.name }
        }
        return result
    }

    /// `true`/`false` when `left` sorts before/after `right` label by label, `nil` when equal.
    private static func compare(_ left: [MetricLabel], _ right: [MetricLabel]) -> Bool? {
        for (leftLabel, rightLabel) in zip(left, right) {
            if leftLabel.name != rightLabel.name {
                return leftLabel.name < rightLabel.name
            }
            if leftLabel.value != rightLabel.value {
                return leftLabel.value < rightLabel.value
            }
        }
        return left.count == right.count ? nil : left.count < right.count
    }
}
