/// How a time range splits across storage tiers: the middle from the coarsest rollup tier that
/// has whole buckets inside it, what is left at each side from the next finer tier, down to whole
/// minutes, and only the partial minutes at the edges from raw records. A window of any length
/// reads at most a few dozen buckets per series.
struct TierPlan: Equatable {
    /// Raw ranges, µs.
    var raw: [Range<Int64>] = []
    /// (tier seconds, bucket range in Unix seconds), coarsest first.
    var rollups: [(Int64, Range<Int64>)] = []

    init(fromMicros: Int64, toMicros: Int64, tiers: [Int64] = RollupDeltas.tiers) {
        guard fromMicros < toMicros else { return }
        let finest = tiers.min() ?? 60
        let start = Self.ceil(Self.ceilSeconds(fromMicros), finest)
        let end = Self.floor(Self.floorSeconds(toMicros), finest)
        guard start < end else {
            raw = [fromMicros..<toMicros]
            return
        }
        split(start..<end, tiers: tiers.sorted(by: >)[...])
        if fromMicros < start * 1_000_000 { raw.append(fromMicros..<(start * 1_000_000)) }
        if end * 1_000_000 < toMicros { raw.append((end * 1_000_000)..<toMicros) }
    }

    /// Covers `range` (a multiple of the finest tier at both ends) with `tiers`, coarsest first.
    private mutating func split(_ range: Range<Int64>, tiers: ArraySlice<Int64>) {
        for (offset, tier) in zip(tiers.indices, tiers) {
            let lower = Self.ceil(range.lowerBound, tier)
            let upper = Self.floor(range.upperBound, tier)
            guard lower < upper else { continue }
            rollups.append((tier, lower..<upper))
            let finer = tiers[(offset + 1)...]
            if range.lowerBound < lower { split(range.lowerBound..<lower, tiers: finer) }
            if upper < range.upperBound { split(upper..<range.upperBound, tiers: finer) }
            return
        }
    }

    static func == (a: TierPlan, b: TierPlan) -> Bool {
        a.raw == b.raw && a.rollups.map(\.0) == b.rollups.map(\.0) && a.rollups.map(\.1) == b.rollups.map(\.1)
    }

    private static func ceilSeconds(_ micros: Int64) -> Int64 {
        micros % 1_000_000 == 0 ? micros / 1_000_000 : micros / 1_000_000 + 1
    }

    private static func floorSeconds(_ micros: Int64) -> Int64 {
        micros >= 0 || micros % 1_000_000 == 0 ? micros / 1_000_000 : micros / 1_000_000 - 1
    }

    private static func ceil(_ seconds: Int64, _ step: Int64) -> Int64 {
        seconds % step == 0 ? seconds : (seconds / step + 1) * step
    }

    private static func floor(_ seconds: Int64, _ step: Int64) -> Int64 {
        seconds / step * step
    }
}
