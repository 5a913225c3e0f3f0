/// Durations as Prometheus writes them, for flags and query parameters alike: one or more
/// `<number><unit>` with units `ms`, `s`, `m`, `h`, `d`, `w`, `y` (`250ms`, `90s`, `1h30m`, `7d`),
/// or a bare number of seconds.
package enum DurationText {
    /// The duration in seconds; nil when `text` is not one.
    package static func seconds(_ text: String) -> Double? {
        guard !text.isEmpty else { return nil }
        if text.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }) { return Double(text) }
        var total = 0.0
        var number = ""
        var rest = Substring(text)
        while let c = rest.first {
            if c.isASCII, c.isNumber || c == "." {
                number.append(c)
                rest.removeFirst()
                continue
            }
            guard let value = Double(number) else { return nil }
            number = ""
            let unit: Double
            if rest.hasPrefix("ms") {
                unit = 0.001
                rest.removeFirst(2)
            } else {
                switch c {
                case "s": unit = 1
                case "m": unit = 60
                case "h": unit = 3600
                case "d": unit = 86400
                case "w": unit = 604_800
                case "y": unit = 31_536_000
                default: return nil
                }
                rest.removeFirst()
            }
            total += value * unit
        }
        return number.isEmpty ? total : nil
    }

    /// Whole seconds as a flag writes them, in the largest unit that divides them, days from two
    /// on (`24h`, `7d`, `90s`).
    package static func text(seconds: Int64) -> String {
        for (unit, size) in [("d", Int64(86400)), ("h", 3600), ("m", 60)]
        where seconds > 0 && seconds % size == 0 && (unit != "d" || seconds >= 2 * size) {
            return "\(seconds / size)\(unit)"
        }
        return "\(seconds)s"
    }
}
