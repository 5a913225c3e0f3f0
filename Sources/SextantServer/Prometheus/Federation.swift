import Foundation
import SextantModel
package import SextantStore

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
            append(series, to: &out)
        }
        return out
    }

    /// Renders the computed `families`, Istio's series from their `istio` totals, and the ingested
    /// series of `ingested` whose newest sample is at least `sinceMs`, merged in federation order
    /// (of a series in both, the newer sample). The ingested series are found through the head's
    /// postings and written from its symbols.
    package static func renderBytes(
        _ families: [MetricFamily],
        istio: IstioTotals = IstioTotals(requests: [], connections: []),
        ingested: MetricHeadView,
        sinceMs: Int64,
        selectors: [SeriesSelector],
        now: Int64 = currentMilliseconds()
    ) -> [UInt8] {
        let computed = merged(
            selectedSeries(families, selectors: selectors, externalLabels: [], now: now).map { series in
                FederatedSeries(
                    name: series.name, labels: FederatedLabels(sorted: series.labels, splitAtLE: false), le: nil,
                    value: series.value, timestampMs: series.timestampMs)
            },
            IstioMetrics.federated(istio, selectors: selectors, now: now))
        var selected = [Bool](repeating: false, count: ingested.slots)
        for slot in ingested.selected(by: selectors) { selected[Int(slot)] = true }
        var slots: [Int32] = []
        for slot in ingested.federationOrder() where selected[Int(slot)] {
            if let latest = ingested.latest(slot), latest.timeMs >= sinceMs, latest.value.bitPattern != staleNaNBits {
                slots.append(slot)
            }
        }
        var out: [UInt8] = []
        out.reserveCapacity(computed.reduce(slots.count * 400) { total, series in
            total + series.name.utf8.count + series.labels.renderedBefore.count + series.labels.renderedAfter.count + 60
        })
        var currentName: String?
        func header(_ name: String) {
            guard name != currentName else { return }
            currentName = name
            out.append(contentsOf: "# TYPE ".utf8)
            out.append(contentsOf: name.utf8)
            out.append(contentsOf: " untyped\n".utf8)
        }
        var next = 0
        for slot in slots {
            let name = ingested.name(slot)
            var keep = true
            // The computed series that sort before this one go first.
            while next < computed.count {
                let order = compare(computed[next], slot, name: name, in: ingested)
                if order > 0 { break }
                if order == 0 {
                    // The same series computed and ingested: the newer sample.
                    keep = ingested.latest(slot)!.timeMs > computed[next].timestampMs
                    if keep {
                        next += 1
                        break
                    }
                }
                header(computed[next].name)
                computed[next].append(to: &out)
                next += 1
                if order == 0 { break }
            }
            guard keep else { continue }
            header(name)
            append(slot, name: name, of: ingested, to: &out)
        }
        for series in computed[next...] {
            header(series.name)
            series.append(to: &out)
        }
        return out
    }

    /// Two lists in federation order as one (they share no series).
    private static func merged(_ a: [FederatedSeries], _ b: [FederatedSeries]) -> [FederatedSeries] {
        guard !a.isEmpty else { return b }
        guard !b.isEmpty else { return a }
        var out: [FederatedSeries] = []
        out.reserveCapacity(a.count + b.count)
        var (i, j) = (0, 0)
        while i < a.count, j < b.count {
            if FederatedSeries.compare(a[i], b[j]) <= 0 {
                out.append(a[i])
                i += 1
            } else {
                out.append(b[j])
                j += 1
            }
        }
        out += a[i...]
        out += b[j...]
        return out
    }

    private static func append(_ series: Series, to out: inout [UInt8]) {
        out.append(contentsOf: series.name.utf8)
        if !series.labels.isEmpty {
            out.append(UInt8(ascii: "{"))
            for (position, label) in series.labels.enumerated() {
                if position > 0 { out.append(UInt8(ascii: ",")) }
                out.append(contentsOf: label.name.utf8)
                out.append(contentsOf: "=\"".utf8)
                ExpositionEncoder.appendEscaped(label.value, escapingQuotes: true, to: &out)
                out.append(UInt8(ascii: "\""))
            }
            out.append(UInt8(ascii: "}"))
        }
        appendValue(series.value, timestampMs: series.timestampMs, to: &out)
    }

    private static func append(_ slot: Int32, name: String, of view: MetricHeadView, to out: inout [UInt8]) {
        out.append(contentsOf: name.utf8)
        var opened = false
        for position in 0..<view.labelCount(slot) {
            let label = view.label(slot, position)
            guard !label.value.isEmpty else { continue }
            out.append(UInt8(ascii: opened ? "," : "{"))
            opened = true
            out.append(contentsOf: label.name.utf8)
            out.append(contentsOf: "=\"".utf8)
            ExpositionEncoder.appendEscaped(label.value, escapingQuotes: true, to: &out)
            out.append(UInt8(ascii: "\""))
        }
        if opened { out.append(UInt8(ascii: "}")) }
        let latest = view.latest(slot)!
        appendValue(latest.value, timestampMs: latest.timeMs, to: &out)
    }

    private static func appendValue(_ value: Double, timestampMs: Int64, to out: inout [UInt8]) {
        out.append(UInt8(ascii: " "))
        ExpositionEncoder.appendFloat(value, canonical: false, to: &out)
        out.append(UInt8(ascii: " "))
        out.append(contentsOf: String(timestampMs).utf8)
        out.append(UInt8(ascii: "\n"))
    }

    /// How a computed series sorts against an ingested one: name, then label by label (empty
    /// values left out); negative, zero or positive.
    private static func compare(_ series: FederatedSeries, _ slot: Int32, name: String, in view: MetricHeadView) -> Int {
        if series.name != name { return series.name < name ? -1 : 1 }
        var position = 0
        let count = view.labelCount(slot)
        for index in 0..<series.labelCount {
            let label = series.label(index)
            while position < count, view.label(slot, position).value.isEmpty { position += 1 }
            guard position < count else { return 1 }
            let other = view.label(slot, position)
            if label.name != other.name { return label.name < other.name ? -1 : 1 }
            if label.value != other.value { return label.value < other.value ? -1 : 1 }
            position += 1
        }
        while position < count, view.label(slot, position).value.isEmpty { position += 1 }
        return position < count ? -1 : 0
    }

    /// The current wall-clock time in milliseconds since the Unix epoch.
    package static func currentMilliseconds() -> Int64 {
        WallClock.system.nowMillis
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
