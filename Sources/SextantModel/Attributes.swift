#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// String attributes of a record (span tags, OTLP attributes flattened to text), in the order
/// they arrived.
///
/// Kept as bytes: every key and value back to back in one buffer, and where each ends in a
/// second. A decoder copies a span's twenty tags straight from the body into it (two allocations,
/// no `String` made, nothing to retain or release), and the block writer reads them back as bytes.
/// Reading a pair by position or key makes its `String`s then. Lookups are linear, which for the
/// few dozen attributes a record may carry beats hashing. A key occurs at most once; equality
/// ignores order. Every byte sequence stored is valid UTF-8.
package struct Attributes: Sendable, Hashable, RandomAccessCollection, ExpressibleByDictionaryLiteral {
    package typealias Element = (key: String, value: String)

    /// Every pair's key and value, pair after pair with nothing between.
    @usableFromInline var bytes: [UInt8]
    /// Two entries per pair: where its key ends and where its value ends (pair `i` starts where
    /// pair `i - 1` ends).
    @usableFromInline var ends: [UInt32]

    package init() {
        bytes = []
        ends = []
    }

    /// Room for `count` pairs of `byteCount` bytes in all, made up front.
    package init(minimumCapacity count: Int, byteCount: Int = 0) {
        bytes = []
        ends = []
        ends.reserveCapacity(2 * count)
        bytes.reserveCapacity(byteCount > 0 ? byteCount : count * 24)
    }

    /// Where one pair's key and value lie in a buffer a decoder reads.
    package struct SourceRanges: Sendable {
        package var keyStart, keyEnd, valueStart, valueEnd: Int32

        package init(key: Range<Int>, value: Range<Int>) {
            keyStart = Int32(truncatingIfNeeded: key.lowerBound)
            keyEnd = Int32(truncatingIfNeeded: key.upperBound)
            valueStart = Int32(truncatingIfNeeded: value.lowerBound)
            valueEnd = Int32(truncatingIfNeeded: value.upperBound)
        }
    }

    /// The pairs at `ranges` of `source` (distinct keys, valid UTF-8), copied in one pass into
    /// storage of exactly their size.
    package init(copying source: UnsafeRawBufferPointer, ranges: UnsafeBufferPointer<SourceRanges>) {
        var total = 0
        for r in ranges { total += Int(r.keyEnd - r.keyStart) + Int(r.valueEnd - r.valueStart) }
        var ends = [UInt32](repeating: 0, count: 2 * ranges.count)
        bytes = [UInt8](unsafeUninitializedCapacity: total) { buffer, count in
            guard let target = buffer.baseAddress, let from = source.baseAddress else { return }
            ends.withUnsafeMutableBufferPointer { ends in
                var at = 0
                for (i, r) in ranges.enumerated() {
                    let keyCount = Int(r.keyEnd - r.keyStart)
                    (target + at).initialize(from: (from + Int(r.keyStart)).assumingMemoryBound(to: UInt8.self), count: keyCount)
                    at += keyCount
                    ends[2 * i] = UInt32(at)
                    let valueCount = Int(r.valueEnd - r.valueStart)
                    (target + at).initialize(from: (from + Int(r.valueStart)).assumingMemoryBound(to: UInt8.self), count: valueCount)
                    at += valueCount
                    ends[2 * i + 1] = UInt32(at)
                }
            }
            count = total
        }
        self.ends = ends
    }

    package init(_ dictionary: [String: String]) {
        self.init(minimumCapacity: dictionary.count)
        for (key, value) in dictionary { appendNew(key: key, value: value) }
    }

    package init(dictionaryLiteral elements: (String, String)...) {
        self.init(minimumCapacity: elements.count)
        for (key, value) in elements { self[key] = value }
    }

    @inlinable
    package var startIndex: Int { 0 }
    @inlinable
    package var endIndex: Int { ends.count / 2 }

    /// Pair `i`'s start, key end and value end in `bytes`.
    @inlinable
    func bounds(_ i: Int) -> (start: Int, keyEnd: Int, end: Int) {
        (i == 0 ? 0 : Int(ends[2 * i - 1]), Int(ends[2 * i]), Int(ends[2 * i + 1]))
    }

    /// Where the value of the pair at `position` lies in the bytes `withUnsafeBytes` shows.
    @inlinable
    package func valueRange(at position: Int) -> Range<Int> {
        let b = bounds(position)
        return b.keyEnd..<b.end
    }

    /// Calls `body` with every pair's bytes, back to back (see `valueRange(at:)`).
    @inlinable
    package func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try bytes.withUnsafeBytes(body)
    }

    package subscript(position: Int) -> Element {
        withPair(at: position) { key, value in
            (String(decoding: key, as: UTF8.self), String(decoding: value, as: UTF8.self))
        }
    }

    /// Calls `body` with the UTF-8 bytes of the pair at `position` (valid only inside it).
    @inlinable
    package func withPair<R>(
        at position: Int, _ body: (_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws -> R
    ) rethrows -> R {
        let b = bounds(position)
        return try bytes.withUnsafeBytes { all in
            try body(
                UnsafeRawBufferPointer(rebasing: all[b.start..<b.keyEnd]),
                UnsafeRawBufferPointer(rebasing: all[b.keyEnd..<b.end]))
        }
    }

    /// Calls `body` with the UTF-8 bytes of every pair in order (valid only inside it).
    @inlinable
    package func forEachPair(
        _ body: (_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws -> Void
    ) rethrows {
        try bytes.withUnsafeBytes { all in
            var start = 0
            var i = 0
            while i < ends.count {
                let keyEnd = Int(ends[i])
                let end = Int(ends[i + 1])
                try body(
                    UnsafeRawBufferPointer(rebasing: all[start..<keyEnd]),
                    UnsafeRawBufferPointer(rebasing: all[keyEnd..<end]))
                start = end
                i += 2
            }
        }
    }

    /// The position of the pair whose key has these UTF-8 bytes.
    @inlinable
    package func index(ofKey key: UnsafeRawBufferPointer) -> Int? {
        bytes.withUnsafeBytes { all in
            var start = 0
            var i = 0
            while i < ends.count {
                let keyEnd = Int(ends[i])
                if keyEnd - start == key.count,
                    key.isEmpty || memcmp(all.baseAddress! + start, key.baseAddress!, key.count) == 0
                {
                    return i / 2
                }
                start = Int(ends[i + 1])
                i += 2
            }
            return nil
        }
    }

    private func index(ofKey key: String) -> Int? {
        var key = key
        return key.withUTF8 { index(ofKey: UnsafeRawBufferPointer($0)) }
    }

    /// The value of `key`; setting nil removes it, setting a value replaces or appends it.
    package subscript(key: String) -> String? {
        get {
            guard let i = index(ofKey: key) else { return nil }
            return withPair(at: i) { _, value in String(decoding: value, as: UTF8.self) }
        }
        set {
            var key = key
            key.withUTF8 { keyBytes in
                if var newValue {
                    newValue.withUTF8 { set(key: UnsafeRawBufferPointer(keyBytes), value: UnsafeRawBufferPointer($0)) }
                } else if let i = index(ofKey: UnsafeRawBufferPointer(keyBytes)) {
                    remove(at: i)
                }
            }
        }
    }

    /// Sets the value of a key given as UTF-8 bytes: replaces it where it stands, or appends it.
    /// Returns the pair's position.
    @discardableResult
    package mutating func set(key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) -> Int {
        guard let i = index(ofKey: key) else {
            appendNew(key: key, value: value)
            return count - 1
        }
        let old = bounds(i)
        bytes.replaceSubrange(old.keyEnd..<old.end, with: value.assumingMemoryBound(to: UInt8.self))
        shiftEnds(from: 2 * i + 1, by: value.count - (old.end - old.keyEnd))
        return i
    }

    /// Moves every end from entry `first` on by `shift` bytes.
    private mutating func shiftEnds(from first: Int, by shift: Int) {
        guard shift != 0 else { return }
        for j in first..<ends.count { ends[j] = UInt32(Int(ends[j]) + shift) }
    }

    /// Appends a pair whose key the caller knows is not present yet (a decoder that tracks keys).
    package mutating func appendNew(key: String, value: String) {
        var key = key
        var value = value
        key.withUTF8 { k in value.withUTF8 { v in appendNew(key: UnsafeRawBufferPointer(k), value: UnsafeRawBufferPointer(v)) } }
    }

    /// Appends a pair of UTF-8 bytes whose key the caller knows is not present yet.
    @inlinable
    package mutating func appendNew(key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) {
        // Typed buffers, so that the appends are copies of memory rather than loops over bytes.
        bytes.append(contentsOf: key.assumingMemoryBound(to: UInt8.self))
        ends.append(UInt32(bytes.count))
        bytes.append(contentsOf: value.assumingMemoryBound(to: UInt8.self))
        ends.append(UInt32(bytes.count))
    }

    /// Removes the pair at `position`.
    package mutating func remove(at position: Int) {
        let gone = bounds(position)
        bytes.removeSubrange(gone.start..<gone.end)
        ends.removeSubrange((2 * position)..<(2 * position + 2))
        shiftEnds(from: 2 * position, by: gone.start - gone.end)
    }

    package mutating func removeAll(where shouldRemove: (Element) throws -> Bool) rethrows {
        var kept = Attributes(minimumCapacity: count, byteCount: bytes.count)
        for i in indices where try !shouldRemove(self[i]) {
            withPair(at: i) { kept.appendNew(key: $0, value: $1) }
        }
        self = kept
    }

    /// The UTF-8 bytes of every key and value together.
    package var byteCount: Int { bytes.count }

    /// The length in bytes of the longest key or value.
    package var longestString: Int {
        var longest = 0
        var start = 0
        var i = 0
        while i < ends.count {
            let keyEnd = Int(ends[i])
            let end = Int(ends[i + 1])
            longest = Swift.max(longest, keyEnd - start, end - keyEnd)
            start = end
            i += 2
        }
        return longest
    }

    /// The pairs sorted by key (stable text for storage and answers).
    package var sortedByKey: [Element] {
        map { $0 }.sorted { $0.key < $1.key }
    }

    package var dictionary: [String: String] {
        Dictionary(map { $0 }, uniquingKeysWith: { _, last in last })
    }

    package static func == (lhs: Attributes, rhs: Attributes) -> Bool {
        guard lhs.count == rhs.count else { return false }
        for i in lhs.indices {
            let same = lhs.withPair(at: i) { key, value in
                guard let j = rhs.index(ofKey: key) else { return false }
                return rhs.withPair(at: j) { _, other in
                    other.count == value.count
                        && (value.isEmpty || memcmp(other.baseAddress!, value.baseAddress!, value.count) == 0)
                }
            }
            if !same { return false }
        }
        return true
    }

    package func hash(into hasher: inout Hasher) {
        // Order-independent, like a dictionary's.
        var mixed = 0
        forEachPair { key, value in
            var one = Hasher()
            one.combine(bytes: key)
            one.combine(0xFF as UInt8)
            one.combine(bytes: value)
            mixed ^= one.finalize()
        }
        hasher.combine(count)
        hasher.combine(mixed)
    }
}
