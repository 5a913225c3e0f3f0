import Foundation

/// The time range of a query: `window` (a Prometheus duration such as `5m`, `1h30m`) ending at
/// `end` (Unix seconds, default now).
struct QueryWindow: Sendable {
    var seconds: Double
    var endSeconds: Double

    var fromMicros: Int64 { Int64((endSeconds - seconds) * 1_000_000) }
    var toMicros: Int64 { Int64(endSeconds * 1_000_000) }

    init(window: String?, end: String?, now: Double, defaultWindow: Double = 300)
        throws(QueryError)
    {
        if let window {
            // Bounded so that the range in µs fits Int64.
            guard let s = DurationText.seconds(window), s > 0, s <= Self.maxSeconds else {
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
}

extension QueryParameters {
    /// The `window` and `end` parameters, ending now on the database's clock by default.
    func window(now: Double, default defaultWindow: Double = 300) throws(QueryError) -> QueryWindow {
        try QueryWindow(
            window: self["window"].map(String.init), end: self["end"].map(String.init), now: now, defaultWindow: defaultWindow)
    }
}
