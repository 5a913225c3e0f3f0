#if canImport(Glibc)
internal import Glibc
#elseif canImport(Darwin)
internal import Darwin
#endif
internal import SextantModel

/// Strings that repeat across the records of one payload (tag keys, service names, clusters, node
/// ids), made once and shared.
///
/// Looked up by their bytes, so a repeat costs a hash and a compare, not an allocation. The table
/// lives for one decode call and holds at most `capacity` strings; past that, new strings are
/// made but not kept, so a payload of unique values cannot grow it.
final class InternTable {
    private struct Entry {
        var hash: UInt64
        var string: String
    }

    private var slots: [Int32]
    private var entries: [Entry] = []
    private let capacity: Int
    /// Strings this long or longer are not kept (they rarely repeat and cost the most to compare).
    static let maxLength = 256

    init(capacity: Int = 2048) {
        self.capacity = capacity
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        slots = Array(repeating: -1, count: size)
        entries.reserveCapacity(min(capacity, 256))
    }

    /// The string with these bytes (which must be valid UTF-8), shared when it was seen before.
    func string(_ bytes: UnsafeRawBufferPointer) -> String {
        guard bytes.count < Self.maxLength else { return String(decoding: bytes, as: UTF8.self) }
        if bytes.count <= 15 {
            // Small strings live inline in the String value: nothing to share.
            return String(decoding: bytes, as: UTF8.self)
        }
        let hash = Self.hash(bytes)
        let mask = slots.count - 1
        var slot = Int(truncatingIfNeeded: hash) & mask
        while true {
            let index = slots[slot]
            if index < 0 { break }
            let entry = entries[Int(index)]
            if entry.hash == hash, Self.equal(entry.string, bytes) { return entry.string }
            slot = (slot + 1) & mask
        }
        let made = String(decoding: bytes, as: UTF8.self)
        if entries.count < capacity {
            slots[slot] = Int32(entries.count)
            entries.append(Entry(hash: hash, string: made))
        }
        return made
    }

    private static func equal(_ string: String, _ bytes: UnsafeRawBufferPointer) -> Bool {
        var string = string
        return string.withUTF8 { utf8 in
            utf8.count == bytes.count && (utf8.isEmpty || memcmp(utf8.baseAddress!, bytes.baseAddress!, utf8.count) == 0)
        }
    }

    @inline(__always)
    static func hash(_ bytes: UnsafeRawBufferPointer) -> UInt64 { ByteHash.hash(bytes) }
}
