/// String attributes of a record (span tags, OTLP attributes flattened to text), in the order
/// they arrived.
///
/// One array of pairs rather than a dictionary: a decoder appends a span's twenty tags into one
/// allocation, and the keys (and most values) are shared strings from its intern table. Lookups
/// are linear, which for the few dozen attributes a record may carry beats hashing. A key occurs
/// at most once; equality ignores order.
package struct Attributes: Sendable, Hashable, RandomAccessCollection, ExpressibleByDictionaryLiteral {
    package typealias Element = (key: String, value: String)

    private var pairs: [Element]

    package init() {
        pairs = []
    }

    package init(minimumCapacity: Int) {
        pairs = []
        pairs.reserveCapacity(minimumCapacity)
    }

    package init(_ dictionary: [String: String]) {
        pairs = dictionary.map { (key: $0.key, value: $0.value) }
    }

    package init(dictionaryLiteral elements: (String, String)...) {
        pairs = []
        pairs.reserveCapacity(elements.count)
        for (key, value) in elements { self[key] = value }
    }

    package var startIndex: Int { pairs.startIndex }
    package var endIndex: Int { pairs.endIndex }
    package subscript(position: Int) -> Element { pairs[position] }

    /// The value of `key`; setting nil removes it, setting a value replaces or appends it.
    package subscript(key: String) -> String? {
        get {
            for pair in pairs where pair.key == key { return pair.value }
            return nil
        }
        set {
            if let i = pairs.firstIndex(where: { $0.key == key }) {
                if let newValue {
                    pairs[i].value = newValue
                } else {
                    pairs.remove(at: i)
                }
            } else if let newValue {
                pairs.append((key, newValue))
            }
        }
    }

    /// Appends a pair whose key the caller knows is not present yet (a decoder that tracks keys).
    package mutating func appendNew(key: String, value: String) {
        pairs.append((key, value))
    }

    package mutating func removeAll(where shouldRemove: (Element) throws -> Bool) rethrows {
        try pairs.removeAll(where: shouldRemove)
    }

    /// The pairs sorted by key (stable text for storage and answers).
    package var sortedByKey: [Element] {
        pairs.sorted { $0.key < $1.key }
    }

    package var dictionary: [String: String] {
        Dictionary(pairs, uniquingKeysWith: { _, last in last })
    }

    package static func == (lhs: Attributes, rhs: Attributes) -> Bool {
        guard lhs.pairs.count == rhs.pairs.count else { return false }
        return lhs.pairs.allSatisfy { rhs[$0.key] == $0.value }
    }

    package func hash(into hasher: inout Hasher) {
        // Order-independent, like a dictionary's.
        var mixed = 0
        for pair in pairs {
            var one = Hasher()
            one.combine(pair.key)
            one.combine(pair.value)
            mixed ^= one.finalize()
        }
        hasher.combine(pairs.count)
        hasher.combine(mixed)
    }
}
