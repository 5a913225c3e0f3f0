/// Which keys an object has had, by their bytes, without making strings: a repeated key
/// replaces the earlier value, as in a JSON object read into a dictionary.
///
/// A key is known by a cheap hash of its length and first and last eight bytes, and a 64-bit
/// filter of those hashes answers most first sightings without looking at the others. Two keys
/// with the same hash count as one: callers check such a key against the stored ones.
struct KeySet {
    private var hashes: [UInt64] = []
    private var filter: UInt64 = 0

    mutating func removeAll() {
        hashes.removeAll(keepingCapacity: true)
        filter = 0
    }

    /// Adds the key; false when it was there (or collides with one that was).
    @inline(__always)
    mutating func insert(_ key: UnsafeRawBufferPointer) -> Bool {
        let h = Self.hash(key)
        let bit: UInt64 = 1 << (h >> 58)
        if filter & bit != 0 {
            for known in hashes where known == h { return false }
        }
        filter |= bit
        hashes.append(h)
        return true
    }

    /// Adds the key whether or not it was there.
    mutating func insertAlways(_ key: UnsafeRawBufferPointer) {
        _ = insert(key)
    }

    @inline(__always)
    private static func hash(_ key: UnsafeRawBufferPointer) -> UInt64 {
        let count = key.count
        var first: UInt64 = 0
        var last: UInt64 = 0
        if count >= 8 {
            first = key.loadUnaligned(as: UInt64.self)
            last = key.loadUnaligned(fromByteOffset: count - 8, as: UInt64.self)
        } else {
            for i in 0..<count { first |= UInt64(key[i]) << (8 * UInt64(i)) }
        }
        var h = (first &* 0x9E37_79B9_7F4A_7C15) ^ (last &* 0xC2B2_AE3D_27D4_EB4F) ^ UInt64(count)
        h ^= h >> 31
        h = h &* 0xff51_afd7_ed55_8ccd
        h ^= h >> 29
        return h
    }
}
