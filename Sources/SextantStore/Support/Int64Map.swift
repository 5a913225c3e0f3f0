/// A hash map from `Int64` to a non-negative `Int64`, by open addressing with linear probing: the
/// writer's look-ups of recent calls by key, link and row id, whose keys are already hashes or
/// sequential ids. One multiply places a key (Fibonacci hashing), a probe reads one array, and a
/// removal shifts the following entries back instead of leaving a tombstone, so a map whose keys
/// come and go forever never degrades.
struct Int64Map {
    private struct Slot {
        var key: Int64
        /// `empty` when the slot is free.
        var value: Int64
    }

    private static let empty: Int64 = -1
    private var slots: [Slot]
    private var shift: UInt64
    private(set) var count = 0

    /// - Parameter minimumCapacity: keys it takes before it first grows.
    init(minimumCapacity: Int = 0) {
        var bits = 4
        while (1 << bits) < minimumCapacity * 2 + 1 { bits += 1 }
        slots = [Slot](repeating: Slot(key: 0, value: Self.empty), count: 1 << bits)
        shift = UInt64(64 - bits)
    }

    private var mask: Int { slots.count - 1 }

    private func home(_ key: Int64) -> Int {
        Int(truncatingIfNeeded: (UInt64(bitPattern: key) &* 0x9E37_79B9_7F4A_7C15) >> shift)
    }

    /// The slot holding `key`, or the free slot where it would go.
    private func find(_ key: Int64) -> (slot: Int, found: Bool) {
        var i = home(key)
        while true {
            let slot = slots[i]
            if slot.value == Self.empty { return (i, false) }
            if slot.key == key { return (i, true) }
            i = (i + 1) & mask
        }
    }

    /// Reads the slot where a look-up of `key` starts and returns a word of it: a caller about to
    /// look up many keys touches them all first, so that their cache misses overlap.
    func touch(_ key: Int64) -> Int64 {
        slots[home(key)].value
    }

    subscript(key: Int64) -> Int64? {
        let (i, found) = find(key)
        return found ? slots[i].value : nil
    }

    /// Sets `key` to `value` (≥ 0); returns the value it replaced.
    @discardableResult
    mutating func updateValue(_ value: Int64, forKey key: Int64) -> Int64? {
        precondition(value >= 0, "Int64Map holds non-negative values")
        let (i, found) = find(key)
        if found {
            defer { slots[i].value = value }
            return slots[i].value
        }
        slots[i] = Slot(key: key, value: value)
        count += 1
        if count * 2 > slots.count { grow() }
        return nil
    }

    /// Slots it has, taken and free.
    var slotCount: Int { slots.count }

    /// Whether one more key would make the map grow.
    var isFull: Bool { (count + 1) * 2 > slots.count }

    /// Takes out every entry whose value `shouldRemove` picks, in one pass over the slots in
    /// order: the cheap way to drop many entries at once, where removing each by its key would be
    /// a look-up of a slot long out of the cache.
    mutating func removeAll(whereValue shouldRemove: (Int64) -> Bool) {
        var i = 0
        while i < slots.count {
            let value = slots[i].value
            // A removal moves a later entry of the run into the hole, or none: slot `i` is looked
            // at again. (Entries it moves from past the end, wrapped to the start, were looked at.)
            if value != Self.empty, shouldRemove(value) { vacate(i) } else { i += 1 }
        }
    }

    /// Takes `key` out; returns its value.
    @discardableResult
    mutating func removeValue(forKey key: Int64) -> Int64? {
        let (i, found) = find(key)
        guard found else { return nil }
        let value = slots[i].value
        vacate(i)
        return value
    }

    /// Takes `key` out if it maps to `value`: one probe, as the writer's removals of aged entries
    /// are look-ups of slots no longer in the cache.
    mutating func remove(_ key: Int64, ifValueIs value: Int64) {
        let (i, found) = find(key)
        if found, slots[i].value == value { vacate(i) }
    }

    /// Empties the slot at `index`, moving back each following entry that the hole would otherwise
    /// cut off from its home.
    private mutating func vacate(_ index: Int) {
        var hole = index
        count -= 1
        var i = hole
        while true {
            i = (i + 1) & mask
            let slot = slots[i]
            if slot.value == Self.empty { break }
            let h = home(slot.key)
            let reachable = hole <= i ? (hole < h && h <= i) : (hole < h || h <= i)
            if reachable { continue }
            slots[hole] = slot
            hole = i
        }
        slots[hole].value = Self.empty
    }

    private mutating func grow() {
        let old = slots
        slots = [Slot](repeating: Slot(key: 0, value: Self.empty), count: old.count * 2)
        shift -= 1
        for slot in old where slot.value != Self.empty {
            let (i, _) = find(slot.key)
            slots[i] = slot
        }
    }
}
