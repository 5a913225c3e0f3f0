#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Log-bucketed latency sketch with bounded relative error (DDSketch mapping).
///
/// Bucket `i` covers `(γ^(i-1), γ^i]` microseconds with `γ = (1+α)/(1-α)`; its representative
/// value `2γ^i/(γ+1)` is within `α` of every value in it. Counts per index add, so sketches
/// (and stored bucket indexes) merge exactly.
package struct LatencySketch: Sendable, Hashable {
    /// Relative accuracy of every quantile.
    package static let relativeAccuracy = 0.01
    package static let gamma = (1 + relativeAccuracy) / (1 - relativeAccuracy)
    private static let logGamma = log(gamma)

    package private(set) var counts: [Int: Int] = [:]
    package private(set) var count = 0
    package private(set) var sumMicros: Double = 0

    package init() {}

    /// The bucket index of a duration; durations of at most 1 µs share index 0.
    package static func index(micros: Int64) -> Int {
        guard micros > 1 else { return 0 }
        return Int((log(Double(micros)) / logGamma).rounded(.up))
    }

    /// The representative duration of a bucket, in microseconds.
    package static func value(index: Int) -> Double {
        guard index > 0 else { return 1 }
        return 2 * pow(gamma, Double(index)) / (gamma + 1)
    }

    package mutating func add(micros: Int64) {
        add(index: Self.index(micros: micros), count: 1, sumMicros: Double(micros))
    }

    package mutating func add(index: Int, count: Int, sumMicros: Double) {
        counts[index, default: 0] += count
        self.count += count
        self.sumMicros += sumMicros
    }

    package mutating func merge(_ other: LatencySketch) {
        for (index, n) in other.counts { counts[index, default: 0] += n }
        count += other.count
        sumMicros += other.sumMicros
    }

    /// The q-quantile (0...1) in microseconds, or nil when empty.
    package func quantile(_ q: Double) -> Double? {
        guard count > 0 else { return nil }
        let rank = q * Double(count - 1)
        var seen = 0
        for index in counts.keys.sorted() {
            seen += counts[index]!
            if Double(seen) > rank { return Self.value(index: index) }
        }
        return Self.value(index: counts.keys.max()!)
    }

    /// Mean duration in microseconds, or nil when empty.
    package var mean: Double? {
        count > 0 ? sumMicros / Double(count) : nil
    }
}
