import SextantStore

extension MetricHeadView {
    /// The live series at least one selector picks, found through the postings (the metric name
    /// and `label="value"` pairs), the other matchers checked on what the postings leave; in slot order.
    func selected(by selectors: [SeriesSelector]) -> [Int32] {
        var picked = Set<Int32>()
        var ordered: [Int32] = []
        for selector in selectors {
            for slot in candidates(name: selector.metricName, equal: selector.postingPairs)
            where selector.matches(name: name(slot), value: { value(slot, label: $0) }) && picked.insert(slot).inserted {
                ordered.append(slot)
            }
        }
        return selectors.count > 1 ? ordered.sorted() : ordered
    }
}
