package import SextantModel

/// What identifies a metric series: its name and labels (a repeated label name keeps its first
/// value), with a seeded hash of both for the head's look-up. Built by the receivers' tasks, so the
/// writer only hashes a word.
package struct MetricSeriesKey: Sendable {
    package var name: String
    /// Sorted by name (bytes), each name once.
    package var labels: [MetricLabelPair]
    var hash: Int

    /// The key of a point's series: its labels are canonical already.
    package init(_ point: MetricPoint) {
        self.init(name: point.name, canonicalLabels: point.labels)
    }

    /// The key of a series named `name` with `labels` in any order, repeated names too.
    package init(name: String, labels: [MetricLabelPair]) {
        self.init(name: name, canonicalLabels: MetricLabelPair.canonical(labels))
    }

    private init(name: String, canonicalLabels unique: [MetricLabelPair]) {
        self.name = name
        self.labels = unique
        // Seeded per process: label values come from senders, and the table lives for the process.
        var h = Self.seed
        h = Self.mix(h, name)
        for label in unique {
            h = Self.mix(h, label.name)
            h = Self.mix(h, label.value)
        }
        hash = Int(truncatingIfNeeded: Self.finish(h))
    }

    /// A random seed per process, so that no sender can aim label values at one hash.
    private static let seed: UInt64 = .random(in: .min ... .max)

    /// Folds a string's bytes (eight at a time) and its length into the hash: FNV-style multiply
    /// and shift, as `ByteHash` does, from the seeded state.
    private static func mix(_ state: UInt64, _ text: String) -> UInt64 {
        if let h = text.utf8.withContiguousStorageIfAvailable({ mix(state, UnsafeRawBufferPointer($0)) }) { return h }
        return Array(text.utf8).withUnsafeBytes { mix(state, $0) }
    }

    private static func mix(_ state: UInt64, _ raw: UnsafeRawBufferPointer) -> UInt64 {
        var h = state ^ UInt64(raw.count)
        var i = 0
        while i + 8 <= raw.count {
            h = (h ^ raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)) &* 0x0000_0100_0000_01b3
            h ^= h >> 29
            i += 8
        }
        var tail: UInt64 = 0
        while i < raw.count {
            tail = tail << 8 | UInt64(raw[i])
            i += 1
        }
        h = (h ^ tail) &* 0x0000_0100_0000_01b3
        return h ^ (h >> 29)
    }

    private static func finish(_ state: UInt64) -> UInt64 {
        var h = state
        h ^= h >> 33
        h = h &* 0xff51_afd7_ed55_8ccd
        h ^= h >> 33
        h = h &* 0xc4ce_b9fe_1a85_ec53
        return h ^ (h >> 33)
    }
}
