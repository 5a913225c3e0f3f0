import SextantModel

/// Sums encoded latency sketches (`LatencySketch.encodedCounts`) for one series at a time into a
/// dense array indexed by sketch bucket: a query adds every rollup row's sketch, and an array
/// slot costs far less per entry than a dictionary.
struct SketchAccumulator {
    /// Indexes of durations up to Int64.max µs fit (γ = 1.0202: index ≤ 2,200); others, which only a
    /// damaged blob could hold, go to `overflow`.
    private var dense = [Int](repeating: 0, count: 2304)
    private var touched: [Int] = []
    private var overflow: [Int: Int] = [:]
    private var sumMicros: Double = 0

    /// Adds one encoded sketch and its durations' sum; false when the bytes are malformed.
    mutating func add(encoded bytes: UnsafeRawBufferPointer, sumMicros: Double) -> Bool {
        self.sumMicros += sumMicros
        return LatencySketch.forEachEncodedCount(bytes) { index, n in
            if index >= 0 && index < dense.count {
                if dense[index] == 0 { touched.append(index) }
                dense[index] += n
            } else {
                overflow[index, default: 0] += n
            }
        }
    }

    /// The sketch summed so far; starts over empty.
    mutating func take() -> LatencySketch {
        var counts = overflow
        counts.reserveCapacity(touched.count + overflow.count)
        for index in touched where dense[index] != 0 {
            counts[index, default: 0] += dense[index]
            dense[index] = 0
        }
        let sketch = LatencySketch(counts: counts, sumMicros: sumMicros)
        touched.removeAll(keepingCapacity: true)
        overflow.removeAll()
        sumMicros = 0
        return sketch
    }
}
