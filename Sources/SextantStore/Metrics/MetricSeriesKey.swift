package import SextantModel

/// What identifies a metric series: its name and labels (a repeated label name keeps its first
/// value), with a seeded hash of both for the head's look-up. Built by the receivers' tasks, so the
/// writer only hashes a word.
package struct MetricSeriesKey: Sendable {
    package var name: String
    /// Sorted by name (bytes), each name once.
    package var labels: [MetricLabelPair]
    var hash: Int

    package init(name: String, labels: [MetricLabelPair]) {
        self.name = name
        let strictlySorted = labels.indices.dropFirst().allSatisfy { MetricLabelPair.precedes(labels[$0 - 1].name, labels[$0].name) }
        var unique: [MetricLabelPair] = []
        if strictlySorted {
            unique = labels
        } else {
            // Sorting is stable, so of repeated names the first one given comes first.
            for label in labels.sorted(by: { MetricLabelPair.precedes($0.name, $1.name) }) where unique.last?.name != label.name {
                unique.append(label)
            }
        }
        self.labels = unique
        // Seeded per process: label values come from senders, and the table lives for the process.
        var hasher = Hasher()
        Self.combine(name, into: &hasher)
        for label in unique {
            Self.combine(label.name, into: &hasher)
            Self.combine(label.value, into: &hasher)
        }
        hash = hasher.finalize()
    }

    private static func combine(_ text: String, into hasher: inout Hasher) {
        var text = text
        text.withUTF8 { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
        // A separator no UTF-8 string holds: "ab" + "c" differs from "a" + "bc".
        hasher.combine(UInt8(0xFF))
    }
}
