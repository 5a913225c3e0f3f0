/// How a time range splits across storage tiers: whole hours from the hourly rollups, whole
/// minutes from the minute rollups, the partial minutes at the edges from raw calls.
struct TierPlan: Equatable {
    /// Raw ranges, µs.
    var raw: [Range<Int64>] = []
    /// (tier seconds, bucket range in Unix seconds).
    var rollups: [(Int64, Range<Int64>)] = []

    init(fromMicros: Int64, toMicros: Int64) {
        guard fromMicros < toMicros else { return }
        let minuteStart = Self.ceil(Self.ceilSeconds(fromMicros), 60)
        let minuteEnd = Self.floor(toMicros / 1_000_000, 60)
        guard minuteStart < minuteEnd else {
            raw = [fromMicros..<toMicros]
            return
        }
        let hourStart = Self.ceil(minuteStart, 3600)
        let hourEnd = Self.floor(minuteEnd, 3600)
        if hourStart < hourEnd {
            rollups.append((3600, hourStart..<hourEnd))
            if minuteStart < hourStart { rollups.append((60, minuteStart..<hourStart)) }
            if hourEnd < minuteEnd { rollups.append((60, hourEnd..<minuteEnd)) }
        } else {
            rollups.append((60, minuteStart..<minuteEnd))
        }
        if fromMicros < minuteStart * 1_000_000 { raw.append(fromMicros..<(minuteStart * 1_000_000)) }
        if minuteEnd * 1_000_000 < toMicros { raw.append((minuteEnd * 1_000_000)..<toMicros) }
    }

    static func == (a: TierPlan, b: TierPlan) -> Bool {
        a.raw == b.raw && a.rollups.map(\.0) == b.rollups.map(\.0) && a.rollups.map(\.1) == b.rollups.map(\.1)
    }

    private static func ceilSeconds(_ micros: Int64) -> Int64 {
        micros % 1_000_000 == 0 ? micros / 1_000_000 : micros / 1_000_000 + 1
    }

    private static func ceil(_ seconds: Int64, _ step: Int64) -> Int64 {
        seconds % step == 0 ? seconds : (seconds / step + 1) * step
    }

    private static func floor(_ seconds: Int64, _ step: Int64) -> Int64 {
        seconds / step * step
    }
}
