import Foundation

/// The time range of a query: `window` (a Prometheus duration such as `5m`, `1h30m`) ending at
/// `end` (Unix seconds, default now).
struct QueryWindow: Sendable {
    var seconds: Double
    var endSeconds: Double

    var fromMicros: Int64 { Int64((endSeconds - seconds) * 1_000_000) }
    var toMicros: Int64 { Int64(endSeconds * 1_000_000) }

    init(window: String?, end: String?, now: Double = Date().timeIntervalSince1970, defaultWindow: Double = 300)
        throws(QueryError)
    {
        if let window {
            // Bounded so that the range in µs fits Int64.
            guard let s = Self.parseDuration(window), s > 0, s <= Self.maxSeconds else {
                throw QueryError("window '\(window.prefix(40))' is not a duration such as 30s, 5m, 1h or 7d")
            }
            seconds = s
        } else {
            seconds = defaultWindow
        }
        if let end {
            guard let e = Double(end), e.isFinite, e > 0, e <= Self.maxSeconds else {
                throw QueryError("end '\(end.prefix(40))' is not a Unix time in seconds")
            }
            endSeconds = e
        } else {
            endSeconds = now
        }
    }

    /// The latest end and the longest window: the end of year 9999, in seconds.
    static let maxSeconds: Double = 253_402_300_799

    /// Prometheus durations: one or more `<number><unit>` with units ms, s, m, h, d, w, y.
    static func parseDuration(_ text: String) -> Double? {
        var total = 0.0
        var number = ""
        var chars = Array(text)
        guard !chars.isEmpty else { return nil }
        var i = 0
        if chars.allSatisfy({ $0.isNumber || $0 == "." }) { return Double(text) }
        while i < chars.count {
            let c = chars[i]
            if c.isNumber || c == "." {
                number.append(c)
                i += 1
                continue
            }
            guard let value = Double(number) else { return nil }
            number = ""
            let unit: Double
            if c == "m", i + 1 < chars.count, chars[i + 1] == "s" {
                unit = 0.001
                i += 2
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
                i += 1
            }
            total += value * unit
        }
        chars.removeAll()
        return number.isEmpty ? total : nil
    }
}
