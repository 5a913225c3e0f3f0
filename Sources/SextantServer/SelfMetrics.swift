package import CoreMetrics
import Synchronization

/// Sextant's own metrics (`sextant_*` on `/metrics`), recorded through swift-metrics
/// (`Counter(label:dimensions:factory:)` and the rest) into this backend.
///
/// The backend is Sextant's own rather than swift-prometheus's: `/metrics` negotiates OpenMetrics
/// as well as the 0.0.4 text format and writes Istio's families with the same encoder
/// (`ExpositionEncoder`), with a `# HELP` for every family, which swift-prometheus's exposition
/// (0.0.4 only, no help for metrics made through swift-metrics) would not give. Each collector
/// has its own backend, passed to the metrics it makes, so that collectors in one process (tests)
/// count apart.
///
/// Counters are counters; meters and plain recorders are gauges (their last value); aggregating
/// recorders are histograms over `valueBuckets`, timers histograms in seconds over `secondsBuckets`.
package final class SelfMetrics: MetricsFactory, Sendable {
    struct Key: Hashable {
        var name: String
        var labels: [MetricLabel]
    }

    /// One series: whichever handler swift-metrics asked for, in one class.
    final class Series: CounterHandler, FloatingPointCounterHandler, MeterHandler, RecorderHandler, TimerHandler,
        Sendable
    {
        struct Values {
            var value: Double = 0
            var bucketCounts: [Int]
            var sum: Double = 0
            var count = 0
        }

        let type: MetricType
        /// Upper bounds of a histogram's buckets (none for counters and gauges).
        let bounds: [Double]
        private let values: Mutex<Values>

        init(type: MetricType, bounds: [Double] = []) {
            self.type = type
            self.bounds = bounds
            values = Mutex(Values(bucketCounts: [Int](repeating: 0, count: bounds.count)))
        }

        var snapshot: Values { values.withLock { $0 } }

        func increment(by amount: Int64) { increment(by: Double(amount)) }
        func increment(by amount: Double) { values.withLock { $0.value += amount } }
        func decrement(by amount: Double) { values.withLock { $0.value -= amount } }
        func reset() { values.withLock { $0.value = 0 } }
        func set(_ value: Int64) { set(Double(value)) }
        func set(_ value: Double) { values.withLock { $0.value = value } }
        func record(_ value: Int64) { record(Double(value)) }

        func record(_ value: Double) {
            guard type == .histogram else { return set(value) }
            values.withLock { v in
                if let bucket = bounds.firstIndex(where: { value <= $0 }) { v.bucketCounts[bucket] += 1 }
                v.sum += value
                v.count += 1
            }
        }

        func recordNanoseconds(_ duration: Int64) { record(Double(duration) / 1e9) }
    }

    /// Buckets of aggregating recorders.
    static let valueBuckets: [Double] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000]
    /// Buckets of timers, in seconds.
    static let secondsBuckets: [Double] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

    private let series = Mutex([Key: Series]())

    package init() {}

    private func series(_ label: String, _ dimensions: [(String, String)], _ make: () -> Series) -> Series {
        let key = Key(name: label, labels: dimensions.map { MetricLabel($0.0, $0.1) })
        return series.withLock { all in
            if let existing = all[key] { return existing }
            let made = make()
            all[key] = made
            return made
        }
    }

    private func remove(_ handler: AnyObject) {
        series.withLock { all in
            if let key = all.first(where: { $0.value === handler })?.key { all[key] = nil }
        }
    }

    package func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        series(label, dimensions) { Series(type: .counter) }
    }

    package func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
        series(label, dimensions) { Series(type: .counter) }
    }

    package func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        series(label, dimensions) { Series(type: .gauge) }
    }

    package func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        series(label, dimensions) { aggregate ? Series(type: .histogram, bounds: Self.valueBuckets) : Series(type: .gauge) }
    }

    package func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        series(label, dimensions) { Series(type: .histogram, bounds: Self.secondsBuckets) }
    }

    package func destroyCounter(_ handler: any CounterHandler) { remove(handler) }
    package func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) { remove(handler) }
    package func destroyMeter(_ handler: any MeterHandler) { remove(handler) }
    package func destroyRecorder(_ handler: any RecorderHandler) { remove(handler) }
    package func destroyTimer(_ handler: any TimerHandler) { remove(handler) }

    /// Every series as families, grouped by name (a family takes its type from its first series),
    /// families by name, series by their label values.
    func families(help: [String: String]) -> [MetricFamily] {
        let snapshot = series.withLock { $0 }
        var byName: [String: [(Key, Series)]] = [:]
        for (key, s) in snapshot { byName[key.name, default: []].append((key, s)) }
        return byName.keys.sorted().map { name in
            let members = byName[name]!.sorted { $0.0.labels.map(\.value).lexicographicallyPrecedes($1.0.labels.map(\.value)) }
            let type = members[0].1.type
            var samples: [MetricSample] = []
            for (key, s) in members where s.type == type {
                let v = s.snapshot
                guard type == .histogram else {
                    samples.append(MetricSample(name: name, labels: key.labels, value: v.value))
                    continue
                }
                var cumulative = 0
                for (bound, count) in zip(s.bounds, v.bucketCounts) {
                    cumulative += count
                    samples.append(
                        MetricSample(
                            name: name + "_bucket", labels: key.labels + [MetricLabel("le", ExpositionEncoder.formatFloat(bound))],
                            value: Double(cumulative)))
                }
                samples.append(
                    MetricSample(name: name + "_bucket", labels: key.labels + [MetricLabel("le", "+Inf")], value: Double(v.count)))
                samples.append(MetricSample(name: name + "_sum", labels: key.labels, value: v.sum))
                samples.append(MetricSample(name: name + "_count", labels: key.labels, value: Double(v.count)))
            }
            return MetricFamily(name: name, help: help[name], type: type, samples: samples)
        }
    }
}

extension SelfMetrics {
    /// Adds `amount` to the counter `name{labels}`; a counter nothing was ever added to is not shown.
    func count(_ name: String, _ labels: [(String, String)] = [], _ amount: Int = 1) {
        guard amount != 0 else { return }
        Counter(label: name, dimensions: labels, factory: self).increment(by: amount)
    }
}
