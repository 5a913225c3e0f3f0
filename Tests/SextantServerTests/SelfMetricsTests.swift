import CoreMetrics
import Testing

@testable import SextantServer

/// Sextant's swift-metrics backend: what each kind of metric becomes on `/metrics`.
@Suite struct SelfMetricsTests {
    @Test func countersMetersRecordersAndTimersBecomeFamilies() throws {
        let metrics = SelfMetrics()
        Counter(label: "sextant_things_total", dimensions: [("channel", "zipkin")], factory: metrics).increment(by: 3)
        Counter(label: "sextant_things_total", dimensions: [("channel", "zipkin")], factory: metrics).increment()
        Counter(label: "sextant_things_total", dimensions: [("channel", "als")], factory: metrics).increment(by: 2)
        let level = Meter(label: "sextant_level", factory: metrics)
        level.set(7)
        level.decrement(by: 2)
        Recorder(label: "sextant_last", aggregate: false, factory: metrics).record(1.5)
        let sizes = Recorder(label: "sextant_sizes", aggregate: true, factory: metrics)
        for size in [1.0, 3, 3, 20_000] { sizes.record(size) }
        Timer(label: "sextant_wait_seconds", factory: metrics).recordMilliseconds(30)
        metrics.count("sextant_nothing_total", [], 0)

        let families = Dictionary(uniqueKeysWithValues: metrics.families(help: [:]).map { ($0.name, $0) })
        #expect(families["sextant_nothing_total"] == nil)
        let things = try #require(families["sextant_things_total"])
        #expect(things.type == .counter)
        #expect(things.samples.map(\.value) == [2, 4])
        #expect(things.samples.map { $0.labels.map(\.value) } == [["als"], ["zipkin"]])
        #expect(families["sextant_level"]?.type == .gauge)
        #expect(families["sextant_level"]?.samples.map(\.value) == [5])
        #expect(families["sextant_last"]?.samples.map(\.value) == [1.5])

        let histogram = try #require(families["sextant_sizes"])
        #expect(histogram.type == .histogram)
        let buckets = histogram.samples.filter { $0.name == "sextant_sizes_bucket" }
        #expect(buckets.first?.labels == [MetricLabel("le", "1")])
        #expect(buckets.first?.value == 1)
        #expect(buckets.first { $0.labels == [MetricLabel("le", "5")] }?.value == 3)
        #expect(buckets.last?.labels == [MetricLabel("le", "+Inf")])
        #expect(buckets.last?.value == 4)
        #expect(histogram.samples.first { $0.name == "sextant_sizes_sum" }?.value == 20_007)
        let timer = try #require(families["sextant_wait_seconds"])
        #expect(timer.samples.first { $0.name == "sextant_wait_seconds_bucket" && $0.labels.first?.value == "0.05" }?.value == 1)
        #expect(timer.samples.first { $0.name == "sextant_wait_seconds_bucket" && $0.labels.first?.value == "0.025" }?.value == 0)
    }

    @Test func aDestroyedMetricIsNoLongerShown() {
        let metrics = SelfMetrics()
        let gone = Counter(label: "sextant_gone_total", factory: metrics)
        gone.increment()
        #expect(metrics.families(help: [:]).map(\.name) == ["sextant_gone_total"])
        gone.destroy()
        #expect(metrics.families(help: [:]).isEmpty)
    }
}
