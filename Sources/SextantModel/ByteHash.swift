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
}

/// A memo of a function of a byte string (for one decode call, one block being written): a repeat
/// costs a hash and a compare of the bytes, no allocation. Holds at most `limit` entries; past that, values are made
/// but not kept.
package struct ByteKeyedMemo<Value> {
    @usableFromInline
    struct Entry {
        @usableFromInline var hash: UInt64
        @usableFromInline var start: Int
        @usableFromInline var count: Int
        @usableFromInline var value: Value

        @inlinable
        init(hash: UInt64, start: Int, count: Int, value: Value) {
            self.hash = hash
            self.start = start
            self.count = count
            self.value = value
        }
    }

    // Inlinable, so that each user specializes it for its `Value`: unspecialized, every look-up
    // would ask the runtime for the entries' type metadata.
    @usableFromInline var keys: [UInt8] = []
    @usableFromInline var entries: [Entry] = []
    @usableFromInline var slots: [Int32] = []
    @usableFromInline let limit: Int

    package init(limit: Int) {
        self.limit = limit
    }

    @inlinable
    package mutating func value(_ key: UnsafeRawBufferPointer, _ make: () -> Value) -> Value {
        if slots.isEmpty { slots = [Int32](repeating: -1, count: 64) }
        let hash = ByteHash.hash(key)
        var mask = slots.count - 1
        var slot = Int(truncatingIfNeeded: hash) & mask
        while slots[slot] >= 0 {
            let entry = entries[Int(slots[slot])]
            if entry.hash == hash, entry.count == key.count,
                keys.withUnsafeBytes({ key.isEmpty || memcmp($0.baseAddress! + entry.start, key.baseAddress!, key.count) == 0 })
            {
                return entry.value
            }
            slot = (slot + 1) & mask
        }
        let made = make()
        guard entries.count < limit else { return made }
        entries.append(Entry(hash: hash, start: keys.count, count: key.count, value: made))
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
        return made
    }
}
