package import SextantModel
import Synchronization

/// A Bloom filter of the trace ids in one span block: "not here" for certain, "maybe here" with
/// about 0.05 % false positives (16 bits and 11 probes per trace). Looking a trace up asks every
/// block's filter, kept in memory, and reads only the blocks that may hold it; nothing is written
/// per span at ingest.
package struct TraceFilter: Sendable, Equatable {
    private(set) var words: [UInt64]
    static let bitsPerTrace = 16
    static let probes = 11

    package init(traces: some Collection<TraceID>) {
        let bits = max(64, traces.count * Self.bitsPerTrace)
        words = [UInt64](repeating: 0, count: (bits + 63) / 64)
        for trace in traces { insert(trace) }
    }

    /// Reads back `bytes`; nil when they cannot be a filter.
    package init?(bytes: [UInt8]) {
        guard !bytes.isEmpty, bytes.count % 8 == 0 else { return nil }
        words = stride(from: 0, to: bytes.count, by: 8).map { offset in
            var word: UInt64 = 0
            for i in 0..<8 { word |= UInt64(bytes[offset + i]) << (8 * UInt64(i)) }
            return word
        }
    }

    package var bytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(words.count * 8)
        for word in words { withUnsafeBytes(of: word.littleEndian) { out.append(contentsOf: $0) } }
        return out
    }

    package func mayContain(_ trace: TraceID) -> Bool {
        var found = true
        probe(trace) { word, mask in
            if words[word] & mask == 0 { found = false }
        }
        return found
    }

    /// Sets the trace's bits in place. (Copying `words` out and back, as this once did, kept a
    /// second reference while the copy changed, so every insert copied the whole filter: a
    /// filter of n traces cost n² / 4 words of `memmove`.)
    private mutating func insert(_ trace: TraceID) {
        let bits = UInt64(words.count * 64)
        words.withUnsafeMutableBufferPointer { words in
            Self.probe(trace, bits: bits) { word, mask in words[word] |= mask }
        }
    }

    private func probe(_ trace: TraceID, _ visit: (Int, UInt64) -> Void) {
        Self.probe(trace, bits: UInt64(words.count * 64), visit)
    }

    /// Double hashing over the id's two halves (already random), mixed so that ids differing in
    /// one half still spread.
    private static func probe(_ trace: TraceID, bits: UInt64, _ visit: (Int, UInt64) -> Void) {
        var h1 = trace.low ^ (trace.high &* 0x9E37_79B9_7F4A_7C15)
        h1 ^= h1 >> 31
        var h2 = (trace.high ^ (trace.low &* 0xC2B2_AE3D_27D4_EB4F)) | 1
        h2 ^= h2 >> 29
        for i in 0..<UInt64(Self.probes) {
            let bit = (h1 &+ i &* h2) % bits
            visit(Int(bit / 64), 1 << (bit % 64))
        }
    }
}

/// The span blocks in memory: each block's id, time range and trace filter. Loaded once when the
/// database opens, added to by every transaction that writes a block (before it commits), trimmed
/// by compaction and retention (a while after they commit).
///
/// A read takes the block ids from here and the rows from its own snapshot, skipping ids its
/// snapshot does not hold. So that a read overlapping a compaction finds either the old blocks or
/// the new one, new blocks are listed before their rows commit, and removed ones stay listed for
/// `removalGrace` after theirs are gone.
final class SpanBlockIndex: Sendable {
    struct Entry: Sendable {
        var id: Int64
        var minStartMicros: Int64
        var maxStartMicros: Int64
        var filter: TraceFilter
        var removedAt: ContinuousClock.Instant?
    }

    let removalGrace: Duration
    private let entries = Mutex<[Entry]>([])

    init(removalGrace: Duration = .seconds(60)) {
        self.removalGrace = removalGrace
    }

    func replaceAll(_ loaded: [Entry]) {
        entries.withLock { $0 = loaded }
    }

    func add(_ entry: Entry) {
        entries.withLock { $0.append(entry) }
    }

    func remove(ids: Set<Int64>) {
        guard !ids.isEmpty else { return }
        let now = ContinuousClock.now
        let grace = removalGrace
        entries.withLock { all in
            all.removeAll { $0.removedAt.map { now - $0 > grace } ?? false }
            for i in all.indices where ids.contains(all[i].id) && all[i].removedAt == nil { all[i].removedAt = now }
            // An array keeps the largest capacity it ever had: the backlog of small blocks before
            // a compaction (about 2,000 a second at 100,000 spans/s) would hold its memory for good.
            if all.capacity > 2 * all.count + 4096 {
                var shrunk: [Entry] = []
                shrunk.reserveCapacity(all.count)
                shrunk.append(contentsOf: all)
                all = shrunk
            }
        }
    }

    /// Entries the index has room for without growing.
    var capacity: Int { entries.withLock { $0.capacity } }

    /// The blocks that may hold a span of `trace`.
    func blocks(mayHold trace: TraceID) -> [Int64] {
        entries.withLock { all in all.filter { $0.filter.mayContain(trace) }.map(\.id) }
    }

    /// Blocks listed, removed ones included.
    var count: Int { entries.withLock { $0.count } }
}

/// The keys of the spans written lately (trace, span id, kind, service), so a resent batch is
/// counted and not stored again. Bounded: the oldest keys go first. Reads also drop repeats, so a
/// resend older than this memory costs disk only.
struct RecentSpanKeys {
    /// Each key's place in `order`: one multiply and a probe of an array a look-up, where a
    /// `Set` would hash the hash again.
    private var places = Int64Map()
    private var order: [Int64] = []
    private var head = 0
    /// What `prefetch` read, kept so that its reads are not optimised away.
    private var touched: Int64 = 0
    let capacity: Int

    init(capacity: Int = 1 << 18) {
        self.capacity = capacity
    }

    /// A 64-bit hash of what tells a span from every other: its trace, id, kind and service.
    static func key(_ span: Span) -> UInt64 {
        var hash = WordHash()
        hash.add(span.traceID.high)
        hash.add(span.traceID.low)
        hash.add(span.spanID.value)
        hash.add(span.kind.rawValue)
        var service = span.serviceName
        hash.add(service.withUTF8 { ByteHash.hash(UnsafeRawBufferPointer($0)) })
        return hash.value
    }

    /// Reads the slots that inserting `keys` will read, so that their cache misses overlap: theirs,
    /// and those of the oldest keys they will push out.
    mutating func prefetch(_ keys: [UInt64]) {
        var sum: Int64 = 0
        for key in keys { sum &+= places.touch(Int64(bitPattern: key)) }
        if order.count == capacity {
            for i in 0..<min(keys.count, capacity) { sum &+= places.touch(order[(head + i) % capacity]) }
        }
        touched &+= sum
    }

    /// Adds the key; false when it was there already.
    mutating func insert(_ key: UInt64) -> Bool {
        let key = Int64(bitPattern: key)
        guard places[key] == nil else { return false }
        if order.count < capacity {
            places.updateValue(Int64(order.count), forKey: key)
            order.append(key)
        } else {
            // The oldest goes first, so that the map never holds more than `capacity` keys (one
            // more would double it).
            places.removeValue(forKey: order[head])
            places.updateValue(Int64(head), forKey: key)
            order[head] = key
            head = (head + 1) % capacity
        }
        return true
    }

    /// Slots of the map that holds the keys (for tests: it stays the size `capacity` needs).
    var mapSlots: Int { places.slotCount }

    mutating func removeAll() {
        places = Int64Map()
        order.removeAll()
        head = 0
    }
}
