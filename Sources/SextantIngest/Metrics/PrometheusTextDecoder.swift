package import SextantModel

/// Parses the Prometheus text exposition format 0.0.4 (what Envoy's `/stats/prometheus` serves)
/// into metric points. `# TYPE` lines give the kinds; a histogram's or summary's `_bucket`,
/// `_sum` and `_count` samples belong to its family.
/// Format: https://prometheus.io/docs/instrumenting/exposition_formats/
package struct PrometheusTextDecoder: Sendable {
    package init() {}

    package func decode(_ text: String, extraLabels: [MetricLabelPair], nowMs: Int64) -> IngestBatch {
        var batch = IngestBatch()
        var types: [String: MetricPoint.Kind] = [:]
        // "\r\n" is one Character in Swift: split on every newline Character, not on "\n" alone.
        for (index, rawLine) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            let line = rawLine.trimmingCharacters(in: " \t\r")
            if line.isEmpty { continue }
            if line.hasPrefix("#") {
                let parts = line.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: true)
                if parts.count >= 4, parts[1] == "TYPE" {
                    types[String(parts[2])] =
                        switch parts[3] {
                        case "counter": .counter
                        case "gauge": .gauge
                        case "histogram": .histogram
                        case "summary": .summary
                        default: .untyped
                        }
                }
                continue
            }
            do throws(RecordError) {
                var point = try sample(Substring(line), line: index + 1, nowMs: nowMs)
                let (family, kind) = Self.family(of: point.name, types: types)
                point.family = family
                point.kind = kind
                point.labels = MetricNames.merge(point.labels, adding: extraLabels).sorted { $0.name < $1.name }
                batch.metrics.append(point)
            } catch {
                batch.rejected.append(error)
            }
        }
        return batch
    }

    private func sample(_ line: Substring, line number: Int, nowMs: Int64) throws(RecordError) -> MetricPoint {
        func fail(_ message: String) -> RecordError {
            RecordError(location: "line \(number)", message: "\(message): '\(line.prefix(120))'")
        }
        var chars = Substring(line)
        let nameEnd = chars.firstIndex(where: { $0 == "{" || $0 == " " || $0 == "\t" }) ?? chars.endIndex
        let name = String(chars[..<nameEnd])
        guard !name.isEmpty else { throw fail("missing metric name") }
        chars = chars[nameEnd...]
        var labels: [MetricLabelPair] = []
        if chars.first == "{" {
            chars = chars.dropFirst()
            while true {
                chars = chars.drop(while: { $0 == " " || $0 == "," })
                if chars.first == "}" {
                    chars = chars.dropFirst()
                    break
                }
                guard let eq = chars.firstIndex(of: "=") else { throw fail("label without '='") }
                let labelName = chars[..<eq].trimmingCharacters(in: " ")
                chars = chars[chars.index(after: eq)...].drop(while: { $0 == " " })
                guard chars.first == "\"" else { throw fail("label value must be quoted") }
                chars = chars.dropFirst()
                var value = ""
                var closed = false
                while let c = chars.first {
                    chars = chars.dropFirst()
                    if c == "\\" {
                        guard let next = chars.first else { break }
                        chars = chars.dropFirst()
                        value.append(next == "n" ? "\n" : next)
                    } else if c == "\"" {
                        closed = true
                        break
                    } else {
                        value.append(c)
                    }
                }
                guard closed else { throw fail("unterminated label value") }
                labels.append(MetricLabelPair(String(labelName), value))
            }
        }
        let fields = chars.split(whereSeparator: { $0 == " " || $0 == "\t" })
        guard let valueText = fields.first else { throw fail("missing value") }
        guard let value = Self.number(valueText) else { throw fail("value is not a number") }
        var ts = nowMs
        if fields.count > 1 {
            guard let t = Int64(fields[1]) else { throw fail("timestamp is not an integer") }
            ts = t
        }
        return MetricPoint(name: name, kind: .untyped, labels: labels, value: value, timestampMs: ts)
    }

    static func number(_ text: Substring) -> Double? {
        switch text {
        case "+Inf", "Inf": return .infinity
        case "-Inf": return -.infinity
        case "NaN": return .nan
        default: return Double(text)
        }
    }

    static func family(of name: String, types: [String: MetricPoint.Kind]) -> (String, MetricPoint.Kind) {
        if let kind = types[name] { return (name, kind) }
        for suffix in ["_bucket", "_sum", "_count"] where name.hasSuffix(suffix) {
            let base = String(name.dropLast(suffix.count))
            if let kind = types[base], kind == .histogram || kind == .summary { return (base, kind) }
        }
        return (name, .untyped)
    }
}

extension StringProtocol {
    fileprivate func trimmingCharacters(in set: String) -> String {
        var s = Substring(self)
        while let c = s.first, set.contains(c) { s = s.dropFirst() }
        while let c = s.last, set.contains(c) { s = s.dropLast() }
        return String(s)
    }
}
