#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A fast 64-bit hash of a short byte string (interned names, dictionary keys), not for adversaries'
/// keys in long-lived tables: FNV-1a over 8-byte words, then a final mix.
package enum ByteHash {
    @inlinable
    package static func hash(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        var i = 0
        while i + 8 <= bytes.count {
            h = (h ^ bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self)) &* 0x0000_0100_0000_01b3
            h ^= h >> 29
            i += 8
        }
        while i < bytes.count {
            h = (h ^ UInt64(bytes[i])) &* 0x0000_0100_0000_01b3
            i += 1
        }
        h ^= h >> 33
        h = h &* 0xff51_afd7_ed55_8ccd
        h ^= h >> 33
        return h
    }

    /// Whether two byte strings are equal (one `memcmp`).
    @inlinable
    package static func equal(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        a.count == b.count && (a.isEmpty || memcmp(a.baseAddress!, b.baseAddress!, a.count) == 0)
    }
}

/// Dense indices of byte strings in first-seen order (the strings of a block being written, the
/// routes of one decode call): a repeat costs a hash and a compare of the bytes, no allocation.
/// Not generic, so that every user runs the one compiled look-up; the caller keeps its values in an
/// array at these indices. Holds at most `limit` strings.
package struct ByteKeyedIndex {
    private struct Entry {
        var hash: UInt64
        var start: Int
        var count: Int
    }

    private var keys: [UInt8] = []
    private var entries: [Entry] = []
    private var slots: [Int32] = []
    private let limit: Int

    package init(limit: Int) {
        self.limit = limit
    }

    /// How many strings it holds.
    package var count: Int { entries.count }

    /// Makes room for `strings` strings of `bytes` bytes in all, so that adding them copies and
    /// rehashes nothing.
    package mutating func reserve(_ strings: Int, bytes: Int) {
        entries.reserveCapacity(strings)
        keys.reserveCapacity(bytes)
        guard entries.isEmpty else { return }
        var size = max(64, slots.count)
        while size < 2 * strings { size *= 2 }
        if size > slots.count { slots = [Int32](repeating: -1, count: size) }
    }

    /// Whether string `index` (below `count`) has these bytes: one compare, for a caller that can
    /// guess the index.
    package func holds(_ key: UnsafeRawBufferPointer, at index: Int) -> Bool {
        let entry = entries[index]
        guard entry.count == key.count else { return false }
        return key.isEmpty || keys.withUnsafeBytes { memcmp($0.baseAddress! + entry.start, key.baseAddress!, key.count) == 0 }
    }

    /// The index of `key`, and whether it was new (then it is `count - 1` and the caller appends
    /// its value); nil for a new key once `limit` strings are held.
    package mutating func index(_ key: UnsafeRawBufferPointer) -> (index: Int, isNew: Bool)? {
        if slots.isEmpty { slots = [Int32](repeating: -1, count: 64) }
        let hash = ByteHash.hash(key)
        var mask = slots.count - 1
        var slot = Int(truncatingIfNeeded: hash) & mask
        while slots[slot] >= 0 {
            let index = Int(slots[slot])
            let entry = entries[index]
            if entry.hash == hash, entry.count == key.count,
                keys.withUnsafeBytes({ key.isEmpty || memcmp($0.baseAddress! + entry.start, key.baseAddress!, key.count) == 0 })
            {
                return (index, false)
            }
            slot = (slot + 1) & mask
        }
        guard entries.count < limit else { return nil }
        entries.append(Entry(hash: hash, start: keys.count, count: key.count))
        keys.append(contentsOf: key.assumingMemoryBound(to: UInt8.self))
        if entries.count * 2 > slots.count {
            slots = [Int32](repeating: -1, count: slots.count * 2)
            mask = slots.count - 1
            for (i, entry) in entries.enumerated() {
                var at = Int(truncatingIfNeeded: entry.hash) & mask
                while slots[at] >= 0 { at = (at + 1) & mask }
                slots[at] = Int32(i)
            }
        } else {
            slots[slot] = Int32(entries.count - 1)
        }
        return (entries.count - 1, true)
    }
}
