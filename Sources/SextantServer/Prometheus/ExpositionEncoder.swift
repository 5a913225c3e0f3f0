/// Renders metric families as Prometheus text 0.0.4 or OpenMetrics 1.0.0.
///
/// See https://prometheus.io/docs/instrumenting/exposition_formats/ and
/// https://prometheus.io/docs/specs/om/open_metrics_spec/.
package struct ExpositionEncoder {
    /// Renders `families` as one exposition in `format`.
    package static func encode(_ families: [MetricFamily], format: ExpositionFormat) -> String {
        String(decoding: encodeBytes(families, format: format), as: UTF8.self)
    }

    /// Renders `families` as UTF-8 bytes, ready for a response body.
    ///
    /// Families sharing a name are merged into the first one so that no family is interleaved;
    /// histogram and summary samples are put in series order (buckets by `le`, then `_sum`,
    /// `_count`, `_created`). Families without samples are left out.
    package static func encodeBytes(_ families: [MetricFamily], format: ExpositionFormat) -> [UInt8] {
        var out: [UInt8] = []
        appendFamilies(families, format: format, to: &out)
        if format == .openMetrics {
            out.append(contentsOf: "# EOF\n".utf8)
        }
        return out
    }

    /// Appends `families` as `encodeBytes` renders them, without OpenMetrics' `# EOF`: for an
    /// exposition written in parts.
    static func appendFamilies(_ families: [MetricFamily], format: ExpositionFormat, to out: inout [UInt8]) {
        let merged = mergingSameNames(families)
        // Size the buffer from each family's first line so large expositions are not regrown.
        out.reserveCapacity(merged.reduce(out.count + 64) { total, family in
            guard let first = family.samples.first else {
                return total
            }
            return total + family.samples.count * estimatedLineLength(name: first.name, labels: first.labels)
        })
        for family in merged {
            appendFamily(family, format: format, to: &out)
        }
    }

    /// Renders a value like Go's `strconv.FormatFloat(v, 'g', -1, 64)` (`49`, `0.5`, `3.6e+06`, `+Inf`); `-0` is `0`.
    package static func formatFloat(_ value: Double) -> String {
        var out: [UInt8] = []
        appendFloat(value, canonical: false, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Renders a value in OpenMetrics' canonical form for `le` and `quantile` (`1.0`, `0.5`, `1e+06`, `+Inf`).
    package static func formatCanonicalFloat(_ value: Double) -> String {
        var out: [UInt8] = []
        appendFloat(value, canonical: true, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    // MARK: - Families

    private static func mergingSameNames(_ families: [MetricFamily]) -> [MetricFamily] {
        var positions: [String: Int] = [:]
        positions.reserveCapacity(families.count)
        var merged: [MetricFamily] = []
        merged.reserveCapacity(families.count)
        for family in families {
            if let position = positions[family.name] {
                merged[position].samples.append(contentsOf: family.samples)
            } else {
                positions[family.name] = merged.count
                merged.append(family)
            }
        }
        return merged
    }

    /// A slightly generous guess at the length of a sample's line, for reserving capacity.
    static func estimatedLineLength(name: String, labels: [MetricLabel]) -> Int {
        labels.reduce(name.utf8.count + 40) { $0 + $1.name.utf8.count + $1.value.utf8.count + 4 }
    }

    private static func appendFamily(_ family: MetricFamily, format: ExpositionFormat, to out: inout [UInt8]) {
        guard let first = family.samples.first else {
            return
        }
        let totalName = appendHeader(
            name: family.name, type: family.type, help: family.help, firstSampleName: first.name, format: format, to: &out)
        appendSamples(of: family, format: format, totalName: totalName, to: &out)
    }

    /// Appends a family's `# HELP` and `# TYPE` lines; returns, for an OpenMetrics counter, the
    /// name its samples take `_total` after.
    static func appendHeader(
        name familyName: String, type: MetricType, help: String?, firstSampleName: String, format: ExpositionFormat,
        to out: inout [UInt8]
    ) -> String? {
        let help = help.flatMap { $0.isEmpty ? nil : $0 }
        // For OpenMetrics the counter family is named without `_total`; its samples keep (or gain) it.
        var totalName: String?
        switch format {
        case .text004:
            var name = familyName
            if type == .counter, !name.hasSuffix("_total"), firstSampleName == name + "_total" {
                name += "_total"
            }
            if let help {
                out.append(contentsOf: "# HELP ".utf8)
                out.append(contentsOf: name.utf8)
                out.append(UInt8(ascii: " "))
                appendEscaped(help, escapingQuotes: false, to: &out)
                out.append(UInt8(ascii: "\n"))
            }
            out.append(contentsOf: "# TYPE ".utf8)
            out.append(contentsOf: name.utf8)
            out.append(UInt8(ascii: " "))
            out.append(contentsOf: type.rawValue.utf8)
            out.append(UInt8(ascii: "\n"))
        case .openMetrics:
            var name = familyName
            if type == .counter {
                if name.hasSuffix("_total") {
                    name.removeLast("_total".count)
                }
                totalName = name
            }
            // OpenMetrics asks for TYPE before HELP.
            out.append(contentsOf: "# TYPE ".utf8)
            out.append(contentsOf: name.utf8)
            out.append(UInt8(ascii: " "))
            out.append(contentsOf: (type == .untyped ? "unknown" : type.rawValue).utf8)
            out.append(UInt8(ascii: "\n"))
            if let help {
                out.append(contentsOf: "# HELP ".utf8)
                out.append(contentsOf: name.utf8)
                out.append(UInt8(ascii: " "))
                appendEscaped(help, escapingQuotes: true, to: &out)
                out.append(UInt8(ascii: "\n"))
            }
        }
        return totalName
    }

    /// Appends a family's samples, in series order (no header).
    static func appendSamples(
        of family: MetricFamily, format: ExpositionFormat, totalName: String?, to out: inout [UInt8]
    ) {
        let numericLabel: String? = switch family.type {
        case .histogram: "le"
        case .summary: "quantile"
        default: nil
        }
        if let order = canonicalOrder(of: family) {
            for index in order {
                appendSample(family.samples[index], format, numericLabel, totalName, to: &out)
            }
        } else {
            for sample in family.samples {
                appendSample(sample, format, numericLabel, totalName, to: &out)
            }
        }
    }

    private static func appendSample(
        _ sample: MetricSample,
        _ format: ExpositionFormat,
        _ numericLabel: String?,
        _ totalName: String?,
        to out: inout [UInt8]
    ) {
        out.append(contentsOf: sample.name.utf8)
        if let totalName, sample.name == totalName {
            out.append(contentsOf: "_total".utf8)
        }
        if !sample.labels.isEmpty {
            out.append(UInt8(ascii: "{"))
            for (position, label) in sample.labels.enumerated() {
                if position > 0 {
                    out.append(UInt8(ascii: ","))
                }
                out.append(contentsOf: label.name.utf8)
                out.append(contentsOf: "=\"".utf8)
                // `le` and `quantile` are numbers in disguise: render them like values so that
                // the same bound always produces the same label value.
                if label.name == numericLabel, let number = Double(label.value) {
                    appendFloat(number, canonical: format == .openMetrics, to: &out)
                } else {
                    appendEscaped(label.value, escapingQuotes: true, to: &out)
                }
                out.append(UInt8(ascii: "\""))
            }
            out.append(UInt8(ascii: "}"))
        }
        out.append(UInt8(ascii: " "))
        appendFloat(sample.value, canonical: false, to: &out)
        if let timestamp = sample.timestampMs {
            out.append(UInt8(ascii: " "))
            switch format {
            case .text004: out.append(contentsOf: String(timestamp).utf8)
            case .openMetrics: appendSeconds(fromMilliseconds: timestamp, to: &out)
            }
        }
        out.append(UInt8(ascii: "\n"))
    }

    // MARK: - Series order for histograms and summaries

    /// The position of a sample within its series: buckets or quantiles first (by bound), then
    /// `_sum`, `_count`, `_created`, then anything unexpected in the order given.
    private struct SeriesRank {
        var rank: Int
        var bound: Double

        func precedes(_ other: SeriesRank) -> Bool {
            rank < other.rank || (rank == other.rank && rank == 0 && bound < other.bound)
        }
    }

    /// Sample indices in series order, or `nil` when the samples already are in that order.
    private static func canonicalOrder(of family: MetricFamily) -> [Int]? {
        let numericLabel: String
        let pointName: String
        switch family.type {
        case .histogram:
            numericLabel = "le"
            pointName = family.name + "_bucket"
        case .summary:
            numericLabel = "quantile"
            pointName = family.name
        case .counter, .gauge, .untyped:
            return nil
        }
        let sumName = family.name + "_sum"
        let countName = family.name + "_count"
        let createdName = family.name + "_created"
        let samples = family.samples
        let ranks = samples.map { sample -> SeriesRank in
            switch sample.name {
            case pointName:
                let text = sample.labels.first { $0.name == numericLabel }?.value
                let bound = text.flatMap { Double($0) } ?? .infinity
                return SeriesRank(rank: 0, bound: bound.isNaN ? .infinity : bound)
            case sumName: return SeriesRank(rank: 1, bound: 0)
            case countName: return SeriesRank(rank: 2, bound: 0)
            case createdName: return SeriesRank(rank: 3, bound: 0)
            default: return SeriesRank(rank: 4, bound: 0)
            }
        }

        // Fast check: each run of one series is ordered and no series appears in two runs.
        var seenSeries = Set<[MetricLabel]>()
        var ordered = true
        for index in samples.indices {
            if index > 0, sameSeries(samples[index - 1].labels, samples[index].labels, ignoring: numericLabel) {
                let previous = ranks[index - 1]
                let current = ranks[index]
                if !(previous.precedes(current) || (previous.rank == 4 && current.rank == 4)) {
                    ordered = false
                    break
                }
            } else if !seenSeries.insert(seriesKey(samples[index].labels, ignoring: numericLabel)).inserted {
                ordered = false
                break
            }
        }
        if ordered {
            return nil
        }

        var groupOfSeries: [[MetricLabel]: Int] = [:]
        var groups: [[Int]] = []
        for index in samples.indices {
            let key = seriesKey(samples[index].labels, ignoring: numericLabel)
            if let group = groupOfSeries[key] {
                groups[group].append(index)
            } else {
                groupOfSeries[key] = groups.count
                groups.append([index])
            }
        }
        var order: [Int] = []
        order.reserveCapacity(samples.count)
        for group in groups {
            order.append(contentsOf: group.sorted { left, right in
                if ranks[left].precedes(ranks[right]) {
                    return true
                }
                if ranks[right].precedes(ranks[left]) {
                    return false
                }
                return left < right
            })
        }
        return order
    }

    /// Whether two label lists name the same series once `ignored` is left out, assuming the same order.
    private static func sameSeries(_ left: [MetricLabel], _ right: [MetricLabel], ignoring ignored: String) -> Bool {
        var leftIndex = 0
        var rightIndex = 0
        while true {
            while leftIndex < left.count, left[leftIndex].name == ignored {
                leftIndex += 1
            }
            while rightIndex < right.count, right[rightIndex].name == ignored {
                rightIndex += 1
            }
            if leftIndex == left.count || rightIndex == right.count {
                return leftIndex == left.count && rightIndex == right.count
            }
            if left[leftIndex] != right[rightIndex] {
                return false
            }
            leftIndex += 1
            rightIndex += 1
        }
    }

    /// An order-independent identity for a series: its labels without `ignored`, sorted.
    private static func seriesKey(_ labels: [MetricLabel], ignoring ignored: String) -> [MetricLabel] {
        labels.filter { $0.name != ignored }.sorted { left, right in
            left.name != right.name ? left.name < right.name : left.value < right.value
        }
    }

    // MARK: - Low-level writers shared with federation

    /// Appends `text` with `\` and newline escaped, and `"` too when `escapingQuotes` is set.
    /// `name="value",…` of a series' labels, values escaped (no braces): written once, copied into
    /// every line of the series.
    static func rendered(_ labels: [MetricLabel]) -> [UInt8] {
        var out: [UInt8] = []
        for (position, label) in labels.enumerated() {
            if position > 0 { out.append(UInt8(ascii: ",")) }
            out.append(contentsOf: label.name.utf8)
            out.append(contentsOf: "=\"".utf8)
            appendEscaped(label.value, escapingQuotes: true, to: &out)
            out.append(UInt8(ascii: "\""))
        }
        return out
    }

    static func appendEscaped(_ text: String, escapingQuotes: Bool, to out: inout [UInt8]) {
        var text = text
        text.withUTF8 { bytes in
            // Most values need no escaping: find out with a tight scan, then copy them in one go.
            let clean = !bytes.contains { byte in
                byte == UInt8(ascii: "\\") || byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\"")
            }
            guard !clean else {
                out.append(contentsOf: bytes)
                return
            }
            for byte in bytes {
                switch byte {
                case UInt8(ascii: "\\"):
                    out.append(contentsOf: "\\\\".utf8)
                case UInt8(ascii: "\n"):
                    out.append(contentsOf: "\\n".utf8)
                case UInt8(ascii: "\"") where escapingQuotes:
                    out.append(contentsOf: "\\\"".utf8)
                default:
                    out.append(byte)
                }
            }
        }
    }

    /// Appends milliseconds as seconds with up to three fractional digits (`1520879607.789`).
    static func appendSeconds(fromMilliseconds milliseconds: Int64, to out: inout [UInt8]) {
        if milliseconds < 0 {
            out.append(UInt8(ascii: "-"))
        }
        let magnitude = milliseconds.magnitude
        out.append(contentsOf: String(magnitude / 1000).utf8)
        var fraction = magnitude % 1000
        guard fraction != 0 else {
            return
        }
        out.append(UInt8(ascii: "."))
        var width = 3
        while fraction % 10 == 0 {
            fraction /= 10
            width -= 1
        }
        let digits = String(fraction)
        for _ in digits.utf8.count..<width {
            out.append(UInt8(ascii: "0"))
        }
        out.append(contentsOf: digits.utf8)
    }

    /// Appends `value` as Go's `%g` with the shortest round-trip digits; `canonical` adds OpenMetrics' `.0`.
    static func appendFloat(_ value: Double, canonical: Bool, to out: inout [UInt8]) {
        if value.isNaN {
            out.append(contentsOf: "NaN".utf8)
            return
        }
        if value.isInfinite {
            out.append(contentsOf: (value < 0 ? "-Inf" : "+Inf").utf8)
            return
        }
        if value == 0 {
            // Go's Prometheus clients print negative zero as plain 0 as well.
            out.append(contentsOf: (canonical ? "0.0" : "0").utf8)
            return
        }
        // Below 1e6, integers print as plain digits; String(Int64) stays a small, unallocated string.
        if value.magnitude < 1e6, value.rounded(.towardZero) == value {
            out.append(contentsOf: String(Int64(value)).utf8)
            if canonical {
                out.append(contentsOf: ".0".utf8)
            }
            return
        }
        // Swift's description already holds the shortest digits that round-trip, as Go's does;
        // only the layout differs (Go switches to an exponent at 1e-5 and 1e+6).
        let text = value.description
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 32) { digits in
            var count = 0
            var pointPosition = 0
            var afterPoint = false
            var inExponent = false
            var exponent = 0
            var exponentNegative = false
            for byte in text.utf8 {
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"):
                    if inExponent {
                        exponent = exponent * 10 + Int(byte - UInt8(ascii: "0"))
                    } else if count == 0, byte == UInt8(ascii: "0") {
                        if afterPoint {
                            pointPosition -= 1
                        }
                    } else if count < digits.count {
                        digits[count] = byte
                        count += 1
                        if !afterPoint {
                            pointPosition += 1
                        }
                    }
                case UInt8(ascii: "."):
                    afterPoint = true
                case UInt8(ascii: "e"), UInt8(ascii: "E"):
                    inExponent = true
                case UInt8(ascii: "-"):
                    if inExponent {
                        exponentNegative = true
                    }
                default:
                    break
                }
            }
            pointPosition += exponentNegative ? -exponent : exponent
            while count > 1, digits[count - 1] == UInt8(ascii: "0") {
                count -= 1
            }

            if value < 0 {
                out.append(UInt8(ascii: "-"))
            }
            let decimalExponent = pointPosition - 1
            if decimalExponent < -4 || decimalExponent >= 6 {
                out.append(digits[0])
                if count > 1 {
                    out.append(UInt8(ascii: "."))
                    out.append(contentsOf: UnsafeMutableBufferPointer(rebasing: digits[1..<count]))
                }
                out.append(UInt8(ascii: "e"))
                out.append(UInt8(ascii: decimalExponent < 0 ? "-" : "+"))
                let magnitude = decimalExponent.magnitude
                if magnitude < 10 {
                    out.append(UInt8(ascii: "0"))
                }
                out.append(contentsOf: String(magnitude).utf8)
            } else if pointPosition <= 0 {
                out.append(contentsOf: "0.".utf8)
                for _ in 0..<(-pointPosition) {
                    out.append(UInt8(ascii: "0"))
                }
                out.append(contentsOf: UnsafeMutableBufferPointer(rebasing: digits[0..<count]))
            } else if pointPosition >= count {
                out.append(contentsOf: UnsafeMutableBufferPointer(rebasing: digits[0..<count]))
                for _ in count..<pointPosition {
                    out.append(UInt8(ascii: "0"))
                }
                if canonical {
                    out.append(contentsOf: ".0".utf8)
                }
            } else {
                out.append(contentsOf: UnsafeMutableBufferPointer(rebasing: digits[0..<pointPosition]))
                out.append(UInt8(ascii: "."))
                out.append(contentsOf: UnsafeMutableBufferPointer(rebasing: digits[pointPosition..<count]))
            }
        }
    }
}
