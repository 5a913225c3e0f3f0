package import SextantModel

/// Decodes statsd datagrams as Envoy's statsd sink sends them: `envoy.<stat>:<value>|c` (a
/// counter's increase since the last flush), `|g` (a gauge), `|ms` (one timer sample).
///
/// Names are tag-extracted (`EnvoyTagExtractor`); counters become cumulative series, timers a
/// histogram with Envoy's default buckets (`_bucket`, `_sum`, `_count`), as `/stats/prometheus`
/// shows them. Bad lines are reported and skipped.
package struct StatsdDecoder: Sendable {
    private let extractor: EnvoyTagExtractor

    package init(extractor: EnvoyTagExtractor = EnvoyTagExtractor()) {
        self.extractor = extractor
    }

    package func decode(datagram: [UInt8], sender: [MetricLabelPair], timestampMs: Int64) -> IngestBatch {
        var batch = IngestBatch()
        var start = 0
        var line = 1
        while start < datagram.count {
            var end = start
            while end < datagram.count, datagram[end] != 0x0A { end += 1 }
            if end > start {
                let text = String(decoding: datagram[start..<end], as: UTF8.self)
                do throws(RecordError) {
                    batch.metrics += try points(text, sender: sender, timestampMs: timestampMs, line: line)
                } catch {
                    batch.rejected.append(error)
                }
            }
            line += 1
            start = end + 1
        }
        return batch
    }

    private func points(_ text: String, sender: [MetricLabelPair], timestampMs: Int64, line: Int) throws(RecordError)
        -> [MetricPoint]
    {
        func fail(_ message: String) -> RecordError {
            RecordError(location: "line \(line)", message: "\(message): '\(text.prefix(120))'")
        }
        guard let colon = text.lastIndex(of: ":") else { throw fail("no ':' between name and value") }
        let rawName = text[..<colon]
        let fields = text[text.index(after: colon)...].split(separator: "|", omittingEmptySubsequences: false)
        guard fields.count >= 2, !rawName.isEmpty else { throw fail("expected <name>:<value>|<type>") }
        guard let value = Double(fields[0]), value.isFinite else { throw fail("value is not a number") }
        var rate = 1.0
        for extra in fields.dropFirst(2) where extra.hasPrefix("@") {
            guard let r = Double(extra.dropFirst()), r > 0, r <= 1 else { throw fail("sample rate must be in (0, 1]") }
            rate = r
        }
        var stat = String(rawName)
        if stat.hasPrefix("envoy.") { stat.removeFirst("envoy.".count) }
        let (base, tags) = extractor.extract(stat)
        let name = MetricNames.envoy(base)
        let labels = MetricNames.merge(tags.map { MetricLabelPair(MetricNames.label($0.name), $0.value) }, adding: sender)
        switch fields[1] {
        case "c":
            return [
                MetricPoint(
                    name: name, kind: .counter, labels: labels, value: value / rate, timestampMs: timestampMs,
                    temporality: .delta)
            ]
        case "g":
            return [MetricPoint(name: name, kind: .gauge, labels: labels, value: value, timestampMs: timestampMs)]
        case "ms", "h":
            guard value >= 0 else { throw fail("timer value must not be negative") }
            var points: [MetricPoint] = []
            for bound in IstioHistogram.bounds {
                points.append(
                    MetricPoint(
                        name: name + "_bucket", family: name, kind: .histogram,
                        labels: labels + [MetricLabelPair("le", Self.format(bound))],
                        value: value <= bound ? 1 / rate : 0, timestampMs: timestampMs, temporality: .delta))
            }
            points.append(
                MetricPoint(
                    name: name + "_bucket", family: name, kind: .histogram, labels: labels + [MetricLabelPair("le", "+Inf")],
                    value: 1 / rate, timestampMs: timestampMs, temporality: .delta))
            points.append(
                MetricPoint(
                    name: name + "_sum", family: name, kind: .histogram, labels: labels, value: value / rate,
                    timestampMs: timestampMs, temporality: .delta))
            points.append(
                MetricPoint(
                    name: name + "_count", family: name, kind: .histogram, labels: labels, value: 1 / rate,
                    timestampMs: timestampMs, temporality: .delta))
            return points
        case let type:
            throw fail("unknown metric type '\(type)'")
        }
    }

    /// Bucket bounds as Prometheus prints them (`0.5`, `1`, `3.6e+06`, `+Inf`).
    static func format(_ bound: Double) -> String {
        // Quantiles and bounds from OTLP and the metrics service can be anything a double holds.
        guard bound.isFinite else { return bound.isNaN ? "NaN" : bound > 0 ? "+Inf" : "-Inf" }
        if bound == bound.rounded(), abs(bound) < 1e6 { return String(Int64(bound)) }
        if bound == bound.rounded() {
            var exponent = 0
            var mantissa = bound
            while abs(mantissa) >= 10 {
                mantissa /= 10
                exponent += 1
            }
            let m = mantissa == mantissa.rounded() ? String(Int64(mantissa)) : String(mantissa)
            return "\(m)e+\(exponent < 10 ? "0" : "")\(exponent)"
        }
        return String(bound)
    }
}
