import SextantModel
import SextantStore

/// The labels of a computed series as federation writes them: sorted by name, empty values left
/// out, split around `le` so that the buckets of a histogram share one label set (its labels
/// before `le` and after it, each escaped once).
final class FederatedLabels: Sendable {
    let before: [MetricLabel]
    let after: [MetricLabel]
    let renderedBefore: [UInt8]
    let renderedAfter: [UInt8]

    /// `labels` sorted by name, without empty values; those that sort after `le` when `splitAtLE`.
    init(sorted labels: [MetricLabel], splitAtLE: Bool) {
        let split = splitAtLE ? labels.firstIndex { $0.name > "le" } ?? labels.count : labels.count
        before = Array(labels[..<split])
        after = Array(labels[split...])
        renderedBefore = ExpositionEncoder.rendered(before)
        renderedAfter = ExpositionEncoder.rendered(after)
    }

    /// Label by label (name, then value); negative, zero or positive.
    static func compare(_ left: [MetricLabel], _ right: [MetricLabel]) -> Int {
        for (l, r) in zip(left, right) {
            if l.name != r.name { return l.name < r.name ? -1 : 1 }
            if l.value != r.value { return l.value < r.value ? -1 : 1 }
        }
        return left.count == right.count ? 0 : left.count < right.count ? -1 : 1
    }
}

/// One computed series as federation writes it.
struct FederatedSeries {
    var name: String
    var labels: FederatedLabels
    /// The `le` between `labels.before` and `labels.after`, for a bucket of a histogram split so.
    var le: String?
    var value: Double
    var timestampMs: Int64

    var labelCount: Int { labels.before.count + (le == nil ? 0 : 1) + labels.after.count }

    /// The label at `position` of the whole set.
    func label(_ position: Int) -> (name: String, value: String) {
        let before = labels.before.count
        if position < before { return (labels.before[position].name, labels.before[position].value) }
        if let le {
            if position == before { return ("le", le) }
            return (labels.after[position - before - 1].name, labels.after[position - before - 1].value)
        }
        return (labels.after[position - before].name, labels.after[position - before].value)
    }

    /// Name, then label by label; negative, zero or positive.
    static func compare(_ a: FederatedSeries, _ b: FederatedSeries) -> Int {
        if a.name != b.name { return a.name < b.name ? -1 : 1 }
        let (n, m) = (a.labelCount, b.labelCount)
        for i in 0..<min(n, m) {
            let (l, r) = (a.label(i), b.label(i))
            if l.name != r.name { return l.name < r.name ? -1 : 1 }
            if l.value != r.value { return l.value < r.value ? -1 : 1 }
        }
        return n == m ? 0 : n < m ? -1 : 1
    }

    func append(to out: inout [UInt8]) {
        out.append(contentsOf: name.utf8)
        let hasBefore = !labels.renderedBefore.isEmpty
        let hasAfter = !labels.renderedAfter.isEmpty
        if hasBefore || le != nil || hasAfter {
            out.append(UInt8(ascii: "{"))
            out.append(contentsOf: labels.renderedBefore)
            if let le {
                if hasBefore { out.append(UInt8(ascii: ",")) }
                out.append(contentsOf: "le=\"".utf8)
                ExpositionEncoder.appendEscaped(le, escapingQuotes: true, to: &out)
                out.append(UInt8(ascii: "\""))
            }
            if hasAfter {
                if hasBefore || le != nil { out.append(UInt8(ascii: ",")) }
                out.append(contentsOf: labels.renderedAfter)
            }
            out.append(UInt8(ascii: "}"))
        }
        out.append(UInt8(ascii: " "))
        ExpositionEncoder.appendFloat(value, canonical: false, to: &out)
        out.append(UInt8(ascii: " "))
        out.append(contentsOf: String(timestampMs).utf8)
        out.append(UInt8(ascii: "\n"))
    }
}

extension IstioMetrics {
    /// Istio's computed series that `selectors` pick, in federation order (by name, then label by
    /// label), without a sample or label array made per line: each label set is sorted and
    /// escaped once, and a histogram's buckets are ordered from its label sets' order.
    static func federated(_ totals: IstioTotals, selectors: [SeriesSelector], now: Int64) -> [FederatedSeries] {
        guard !selectors.isEmpty else { return [] }
        let requests = federationOrder(totals.requests, labels: labels)
        let histogramsOf = requests.map { histogramValues($0.0) }
        let connections = federationOrder(totals.connections, labels: tcpLabels)
        let bounds = IstioHistogram.bounds.map(ExpositionEncoder.formatFloat) + ["+Inf"]
        // Buckets in the order of their `le` text, as federation compares label values.
        let leOrder = bounds.indices.sorted { bounds[$0] < bounds[$1] }

        enum Kind { case count, sum(Int), bucket(Int), tcp(Int) }
        var names: [(String, Kind)] = [(Self.requests.name, .count)]
        for (part, histogram) in histograms.enumerated() {
            names += [(histogram.name + "_bucket", .bucket(part)), (histogram.name + "_sum", .sum(part)), (histogram.name + "_count", .count)]
        }
        for (i, definition) in tcp.enumerated() { names.append((definition.name, .tcp(i))) }
        names.sort { $0.0 < $1.0 }

        var out: [FederatedSeries] = []
        for (name, kind) in names {
            // A selector on the name alone decides once per name.
            let byName = selectors.map { selector in
                selector.matchers.allSatisfy { $0.name == SeriesSelector.metricNameLabel }
                    ? selector.matches(name: name, value: { _ in "" }) : nil
            }
            if byName.allSatisfy({ $0 == false }) { continue }
            func picked(_ labels: FederatedLabels, le: String?) -> Bool {
                zip(selectors, byName).contains { selector, decided in
                    decided ?? selector.matches(name: name) { label in
                        if label == "le", let le { return le }
                        return (labels.before.first { $0.name == label } ?? labels.after.first { $0.name == label })?.value ?? ""
                    }
                }
            }
            func emit(_ labels: FederatedLabels, le: String? = nil, _ value: Double) {
                guard picked(labels, le: le) else { return }
                out.append(FederatedSeries(name: name, labels: labels, le: le, value: value, timestampMs: now))
            }
            switch kind {
            case .count:
                for (s, labels) in requests { emit(labels, Double(s.count)) }
            case .sum(let part):
                for ((_, labels), values) in zip(requests, histogramsOf) { emit(labels, values[part].sum) }
            case .tcp(let i):
                for (s, labels) in connections { emit(labels, tcpValues(s)[i]) }
            case .bucket(let part):
                // Label sets that agree before `le` are ordered by `le` first, then by what follows.
                var start = 0
                while start < requests.count {
                    var end = start + 1
                    while end < requests.count, requests[end].1.before == requests[start].1.before { end += 1 }
                    for b in leOrder {
                        for i in start..<end {
                            let (s, labels) = requests[i]
                            let n = b < IstioHistogram.bounds.count ? histogramsOf[i][part].buckets[b] : s.count
                            emit(labels, le: bounds[b], Double(n))
                        }
                    }
                    start = end
                }
            }
        }
        return out
    }

    /// Series with their labels as federation writes them, in its order.
    private static func federationOrder<T>(_ series: [T], labels: (T) -> [MetricLabel]) -> [(T, FederatedLabels)] {
        series.map { s -> (T, [MetricLabel]) in
            (s, labels(s).filter { !$0.value.isEmpty }.sorted { $0.name < $1.name })
        }
        .sorted { FederatedLabels.compare($0.1, $1.1) < 0 }
        .map { ($0.0, FederatedLabels(sorted: $0.1, splitAtLE: true)) }
    }
}
