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

    /// A sketch of the given calls per bucket index.
    package init(counts: [Int: Int], sumMicros: Double) {
        self.counts = counts.filter { $0.value != 0 }
        count = self.counts.values.reduce(0, +)
        self.sumMicros = sumMicros
    }

    /// A sketch of `count` calls in one bucket.
    package init(index: Int, count: Int, sumMicros: Double) {
        add(index: index, count: count, sumMicros: sumMicros)
    }

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

    /// Adds `count` calls at `index` (a negative count takes calls out, as a rollup delta does).
    package mutating func add(index: Int, count: Int, sumMicros: Double) {
        let n = counts[index, default: 0] + count
        counts[index] = n == 0 ? nil : n
        self.count += count
        self.sumMicros += sumMicros
    }

    package mutating func merge(_ other: LatencySketch) {
        if counts.isEmpty {
            let sum = sumMicros
            self = other
            sumMicros += sum
            return
        }
        for (index, n) in other.counts { add(index: index, count: n, sumMicros: 0) }
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

    /// The bucket counts in the compact form rollup rows store: for each non-empty bucket in index
    /// order, its distance from the previous index and its count, each a zigzag LEB128 varint.
    /// The sum is not part of it (rollup rows keep it in a column of its own).
    package var encodedCounts: [UInt8] { Self.encode(counts) }

    /// `encodedCounts` of counts per index.
    package static func encode(_ counts: [Int: Int]) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(counts.count * 3)
        var previous = 0
        for index in counts.keys.sorted() where counts[index] != 0 {
            appendVarint(index - previous, to: &bytes)
            appendVarint(counts[index]!, to: &bytes)
            previous = index
        }
        return bytes
    }

    /// A sketch from `encodedCounts`; nil when the bytes are not that form.
    package init?(encodedCounts bytes: some Collection<UInt8>, sumMicros: Double = 0) {
        var sketch = LatencySketch()
        guard Self.forEachEncodedCount(bytes, { index, n in sketch.add(index: index, count: n, sumMicros: 0) }) else {
            return nil
        }
        sketch.sumMicros = sumMicros
        self = sketch
    }

    /// Calls `body` with each (index, count) of `encodedCounts` bytes; false when they are malformed.
    @discardableResult
    package static func forEachEncodedCount(_ bytes: UnsafeRawBufferPointer, _ body: (Int, Int) -> Void) -> Bool {
        var position = 0
        var index = 0
        while position < bytes.count {
            guard let delta = readVarint(bytes, &position), let n = readVarint(bytes, &position) else { return false }
            index &+= delta
            body(index, n)
        }
        return true
    }

    /// The same for bytes in any collection.
    @discardableResult
    package static func forEachEncodedCount(_ bytes: some Collection<UInt8>, _ body: (Int, Int) -> Void) -> Bool {
        Array(bytes).withUnsafeBytes { forEachEncodedCount($0, body) }
    }

    private static func appendVarint(_ value: Int, to bytes: inout [UInt8]) {
        var v = UInt64(bitPattern: Int64((value << 1) ^ (value >> 63)))
        while v >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    /// Reads one zigzag varint at `position`; nil when it is cut short or longer than 64 bits.
    private static func readVarint(_ bytes: UnsafeRawBufferPointer, _ position: inout Int) -> Int? {
        var v: UInt64 = 0
        var shift: UInt64 = 0
        while position < bytes.count, shift < 64 {
            let byte = bytes[position]
            position += 1
            v |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 {
                return Int(Int64(bitPattern: v >> 1) ^ -Int64(bitPattern: v & 1))
            }
            shift += 7
        }
        return nil
    }

    /// Mean duration in microseconds, or nil when empty.
    package var mean: Double? {
        count > 0 ? sumMicros / Double(count) : nil
    }
}
