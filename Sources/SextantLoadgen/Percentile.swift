/// Nearest-rank percentiles of latency samples.
package enum Percentile {
    /// The value at quantile `q` (0...1) of ascending `sorted` values, by nearest rank; nil when empty.
    package static func of(_ sorted: [Double], _ q: Double) -> Double? {
        guard !sorted.isEmpty else { return nil }
        let rank = Int((q * Double(sorted.count)).rounded(.up))
        return sorted[min(max(rank, 1), sorted.count) - 1]
    }
}
