import Foundation
import SextantModel
import Testing

@Suite struct LatencySketchTests {
    @Test func quantilesStayWithinOnePercentOfTheExactValue() {
        var generator = SplitMix64(seed: 2026)
        var values: [Int64] = []
        for _ in 0..<20_000 { values.append(Int64.random(in: 200...2_000_000, using: &generator)) }
        for _ in 0..<200 { values.append(Int64.random(in: 5_000_000...9_000_000, using: &generator)) }
        var sketch = LatencySketch()
        for v in values { sketch.add(micros: v) }
        let sorted = values.sorted()
        for q in [0.5, 0.9, 0.95, 0.99, 0.999] {
            let exact = Double(sorted[Int(q * Double(sorted.count - 1))])
            let estimate = sketch.quantile(q)!
            #expect(abs(estimate - exact) / exact <= LatencySketch.relativeAccuracy + 1e-9, "q=\(q)")
        }
    }

    @Test func mergingSketchesEqualsSketchingEverything() {
        var a = LatencySketch()
        var b = LatencySketch()
        var all = LatencySketch()
        for v in stride(from: Int64(10), to: 100_000, by: 37) {
            if v % 2 == 0 { a.add(micros: v) } else { b.add(micros: v) }
            all.add(micros: v)
        }
        a.merge(b)
        #expect(a == all)
    }

    @Test func emptySketchHasNoQuantile() {
        #expect(LatencySketch().quantile(0.5) == nil)
        #expect(LatencySketch().mean == nil)
    }
}
