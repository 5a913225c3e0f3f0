package import SextantModel

/// A reader's snapshot of the metric head: every series' name, labels and newest sample, the
/// postings to find them, and the samples not yet in chunks. Series are named by their slot
/// (`Int32`); slots of series retention removed are skipped by every listing.
package struct MetricHeadView: Sendable {
    let state: MetricHead.State
    let head: MetricHead

    /// Slots, removed series included.
    package var slots: Int { state.series.count }

    package func isLive(_ slot: Int32) -> Bool { state.series[Int(slot)].isLive }
    package func id(_ slot: Int32) -> Int64 { state.series[Int(slot)].id }
    package func name(_ slot: Int32) -> String { state.symbols[Int(state.series[Int(slot)].name)] }
    package func family(_ slot: Int32) -> String { state.symbols[Int(state.series[Int(slot)].family)] }
    package func kind(_ slot: Int32) -> MetricPoint.Kind { state.series[Int(slot)].kind }

    /// The newest sample's time (ms) and value.
    package func latest(_ slot: Int32) -> (timeMs: Int64, value: Double)? {
        state.series[Int(slot)].latest.map { ($0.timeMs, $0.value) }
    }

    package func labelCount(_ slot: Int32) -> Int { state.series[Int(slot)].labels.count / 2 }

    /// The name and value of a series' `position`th label (labels are sorted by name).
    package func label(_ slot: Int32, _ position: Int) -> (name: String, value: String) {
        let labels = state.series[Int(slot)].labels
        return (state.symbols[Int(labels[2 * position])], state.symbols[Int(labels[2 * position + 1])])
    }

    package func labels(_ slot: Int32) -> [MetricLabelPair] {
        (0..<labelCount(slot)).map { let l = label(slot, $0); return MetricLabelPair(l.name, l.value) }
    }

    /// A label's value, empty when the series lacks it (as Prometheus's matchers see it).
    package func value(_ slot: Int32, label name: String) -> String {
        guard let symbol = state.symbolIDs[name] else { return "" }
        let labels = state.series[Int(slot)].labels
        for position in stride(from: 0, to: labels.count, by: 2) where labels[position] == symbol {
            return state.symbols[Int(labels[position + 1])]
        }
        return ""
    }

    /// Live series with this metric name (when given) and every one of these label values, in slot
    /// order, found through the postings; every live series when nothing is given. A pair with an
    /// empty value (a label that must be absent) cannot be looked up: leave it to the caller.
    package func candidates(name: String?, equal pairs: [(name: String, value: String)]) -> [Int32] {
        var lists: [[Int32]] = []
        if let name {
            guard let symbol = state.symbolIDs[name], let list = state.byName[symbol] else { return [] }
            lists.append(list)
        }
        for pair in pairs {
            guard let n = state.symbolIDs[pair.name], let v = state.symbolIDs[pair.value],
                let list = state.byLabel[UInt64(n) << 32 | UInt64(v)]
            else { return [] }
            lists.append(list)
        }
        guard var result = lists.min(by: { $0.count < $1.count }) else {
            return state.series.indices.compactMap { state.series[$0].isLive ? Int32($0) : nil }
        }
        // Postings are in slot order: intersect by walking each against the shortest.
        for list in lists where result.count > 0 {
            var kept: [Int32] = []
            var position = 0
            for slot in result {
                while position < list.count, list[position] < slot { position += 1 }
                if position < list.count, list[position] == slot { kept.append(slot) }
            }
            result = kept
        }
        return result
    }

    /// Live series in the order federation writes them: by name, then label by label (name, then
    /// value), labels with empty values left out. Sorted once per set of series and kept.
    package func federationOrder() -> [Int32] {
        if let order = state.order { return order }
        let symbols = state.symbols
        let series = state.series
        // Each symbol's rank in string order: comparing two ranks is comparing the strings.
        let ranks: [UInt32] = {
            var out = [UInt32](repeating: 0, count: symbols.count)
            for (rank, index) in symbols.indices.sorted(by: { symbols[$0] < symbols[$1] }).enumerated() {
                out[index] = UInt32(rank)
            }
            return out
        }()
        let empty = state.symbolIDs[""]
        let keys: [[UInt32]] = series.map { s in
            var key = [ranks[Int(s.name)]]
            for position in stride(from: 0, to: s.labels.count, by: 2) where s.labels[position + 1] != empty {
                key.append(ranks[Int(s.labels[position])])
                key.append(ranks[Int(s.labels[position + 1])])
            }
            return key
        }
        let order = series.indices.filter { series[$0].isLive }.map(Int32.init).sorted { a, b in
            keys[Int(a)].lexicographicallyPrecedes(keys[Int(b)])
        }
        head.keep(order: order, forSeries: series.count)
        return order
    }

    /// The pending samples (not yet in chunks) of the given series in `[from, to]` (ms), in the
    /// order they were stored.
    func pendingSamples(of ids: Set<Int64>, fromMs: Int64, toMs: Int64) -> [Int64: [(Int64, Double)]] {
        var out: [Int64: [(Int64, Double)]] = [:]
        for id in ids {
            guard let slot = state.byID[id], Int(slot) < state.heads.count, let head = state.heads[Int(slot)] else { continue }
            let samples = head.samples().filter { $0.0 >= fromMs && $0.0 <= toMs }
            if !samples.isEmpty { out[id] = samples }
        }
        return out
    }
}
