import SextantModel

/// A call the writer stored lately, as its row is now: what merging another report into it and
/// pairing it with the other proxy's report read and change. Kept small and without strings (ids
/// binary, the request id and addresses as hashes): the index holds a great many.
struct OpenCall: Equatable {
    var rowID: Int64
    /// `CallKey` of the call: what a resend or another channel's report of it has too.
    var key: Int64
    /// The stored labels and measures (reporter, proxy, service and peer are in `sample.facts`).
    var sample: CallSample
    // The ids a call may lack, stored without the padding of six optionals (the writer copies
    // calls often and the index holds a great many): a bit of `present` says which are there,
    // and an absent one is 0, so that equal calls are equal field by field.
    private var requestIDValue: UInt64 = 0
    private var localAddressValue: UInt64 = 0
    private var remoteAddressValue: UInt64 = 0
    private var traceIDValue = TraceID(high: 0, low: 0)
    private var spanIDValue: UInt64 = 0
    private var parentSpanIDValue: UInt64 = 0
    private var present: UInt8 = 0

    private static let hasRequestID: UInt8 = 1
    private static let hasLocalAddress: UInt8 = 2
    private static let hasRemoteAddress: UInt8 = 4
    private static let hasTraceID: UInt8 = 8
    private static let hasSpanID: UInt8 = 16
    private static let hasParentSpanID: UInt8 = 32

    init(
        rowID: Int64, key: Int64, sample: CallSample, requestID: UInt64?, localAddress: UInt64?, remoteAddress: UInt64?,
        traceID: TraceID?, spanID: SpanID?, parentSpanID: SpanID?
    ) {
        self.rowID = rowID
        self.key = key
        self.sample = sample
        self.requestID = requestID
        self.localAddress = localAddress
        self.remoteAddress = remoteAddress
        self.traceID = traceID
        self.spanID = spanID
        self.parentSpanID = parentSpanID
    }

    private func has(_ bit: UInt8) -> Bool { present & bit != 0 }

    private mutating func mark(_ bit: UInt8, _ isPresent: Bool) {
        present = isPresent ? present | bit : present & ~bit
    }

    /// `TextHash` of the `x-request-id`, of the local and of the remote address.
    var requestID: UInt64? {
        get { has(Self.hasRequestID) ? requestIDValue : nil }
        set {
            requestIDValue = newValue ?? 0
            mark(Self.hasRequestID, newValue != nil)
        }
    }

    var localAddress: UInt64? {
        get { has(Self.hasLocalAddress) ? localAddressValue : nil }
        set {
            localAddressValue = newValue ?? 0
            mark(Self.hasLocalAddress, newValue != nil)
        }
    }

    var remoteAddress: UInt64? {
        get { has(Self.hasRemoteAddress) ? remoteAddressValue : nil }
        set {
            remoteAddressValue = newValue ?? 0
            mark(Self.hasRemoteAddress, newValue != nil)
        }
    }

    var traceID: TraceID? {
        get { has(Self.hasTraceID) ? traceIDValue : nil }
        set {
            traceIDValue = newValue ?? TraceID(high: 0, low: 0)
            mark(Self.hasTraceID, newValue != nil)
        }
    }

    var spanID: SpanID? {
        get { has(Self.hasSpanID) ? SpanID(spanIDValue) : nil }
        set {
            spanIDValue = newValue?.value ?? 0
            mark(Self.hasSpanID, newValue != nil)
        }
    }

    var parentSpanID: SpanID? {
        get { has(Self.hasParentSpanID) ? SpanID(parentSpanIDValue) : nil }
        set {
            parentSpanIDValue = newValue?.value ?? 0
            mark(Self.hasParentSpanID, newValue != nil)
        }
    }

    var reporter: Reporter { Reporter(rawValue: sample.facts.reporter) ?? .source }
    var proxyID: Int64 { sample.facts.proxyID }
    var serviceID: Int64 { sample.facts.serviceID }
    var isPaired: Bool { sample.facts.paired }

    /// The hashes of `links` (a call has at most two: its span's and its request id's), 0 for
    /// none; without making the links' array.
    var linkHashes: (first: Int64, second: Int64) {
        var spanLink: Int64 = 0
        if let traceID {
            if reporter == .source, let spanID {
                spanLink = CallIndex.Link.clientSpan(trace: traceID, span: spanID).hash
            } else if reporter == .destination, let parentSpanID {
                spanLink = CallIndex.Link.serverParent(trace: traceID, span: parentSpanID).hash
            }
        }
        let requestLink = requestID.map { CallIndex.Link.request(id: $0, serviceID: serviceID, reporter: reporter).hash } ?? 0
        return spanLink == 0 ? (requestLink, 0) : (spanLink, requestLink)
    }
}

/// A 64-bit hash of a text, for comparing texts the index does not keep: `ByteHash`, a word of
/// the text at a time. (Call blocks keep it for the request id; a call stored by a version that
/// hashed otherwise, FNV-1a a byte at a time, is merged with and paired with nothing that comes
/// after the upgrade, as if it had aged out.)
enum TextHash {
    static func of(_ text: String) -> UInt64 {
        var text = text
        return text.withUTF8 { ByteHash.hash(UnsafeRawBufferPointer($0)) }
    }
}

/// The calls the writer stored lately, in memory, by what finds them again: the call key that
/// merges a resent or second-channel report into its call, and the links that pair it with the
/// other proxy's report (the client span's id or the server span's parent, the request id). Each
/// call is held as its row is now (`OpenCall`), so merging and pairing read nothing from the
/// database and a call costs no insert into an index on a random key.
///
/// A call stays findable for `window` of the writer's clock or until `capacity` later calls have
/// come, whichever is first: a report whose other side comes later than that stays unpaired, as
/// Istio counts a call seen from one side, and a resend later than that is stored again. After a
/// restart (or a failed commit) the index is rebuilt from the newest `capacity` rows.
///
/// A link's key is a hash: two links that collide both stay candidates, and pairing checks each
/// candidate's fields, so a link collision costs a comparison, never a wrong pair. The request id
/// and addresses themselves are compared by their 64-bit hashes: two different request ids of the
/// same service could pair only if their hashes collided.
struct CallIndex {
    /// How a report may name the other side of its call.
    enum Link: Hashable {
        /// A client span's report: the server span of the call has it as parent.
        case clientSpan(trace: TraceID, span: SpanID)
        /// A server span's report: its parent is the client span of the call.
        case serverParent(trace: TraceID, span: SpanID)
        /// The `x-request-id` (its `TextHash`) both proxies saw, for one service and reporting side.
        case request(id: UInt64, serviceID: Int64, reporter: Reporter)

        var hash: Int64 {
            var h = WordHash()
            switch self {
            case .clientSpan(let trace, let span):
                h.add(UInt8(1))
                h.add(trace.high)
                h.add(trace.low)
                h.add(span.value)
            case .serverParent(let trace, let span):
                h.add(UInt8(2))
                h.add(trace.high)
                h.add(trace.low)
                h.add(span.value)
            case .request(let id, let serviceID, let reporter):
                h.add(UInt8(3))
                h.add(id)
                h.add(serviceID)
                h.add(reporter.rawValue)
            }
            // 0 stands for "no link" in an entry.
            return Int64(bitPattern: h.value | 1)
        }
    }

    /// A stored call with what it registered, to take it out again when it ages (a call has at
    /// most two links: its span's and its request id's; 0 for none).
    private struct Slot {
        var call: OpenCall
        var firstLink: Int64
        var secondLink: Int64
        var storedAtMicros: Int64
        /// False once retention deleted its row: it stays in line until it ages, found by nothing.
        var live: Bool
    }

    let window: Int64
    let capacity: Int
    /// The row id the next new call gets: one more than any row written.
    private(set) var nextRowID: Int64 = 1
    /// The calls in the order they came, in a ring: the call numbered `seq` (counted from the first
    /// ever inserted) is at `seq % ring.count`; `head` is the oldest still in, `tail` the next. It
    /// grows to `capacity + 1` slots at most (a call is in for a moment before the oldest goes).
    private var ring: [Slot?]
    private var head: Int64 = 0
    private var tail: Int64 = 0
    /// Each call's number by its key. By its row id needs no map: rows are stored in the order of
    /// their ids (`seq(ofRow:)`).
    ///
    /// Calls that age out stay in this map and `seqByLink` until the map would grow: removing each
    /// would be a look-up of a slot long out of the cache, three a call. A number below `head` is
    /// a call gone, found by nothing; such entries are dropped in one pass over the map
    /// (`makeRoomForKey`, `makeRoomForLink`) when they are a fifth of it or more, else it grows.
    private var seqByKey = Int64Map()
    /// The first call under each link; `moreByLink` holds any others (a request id that several
    /// calls carried, say), so that the common case costs no array.
    private var seqByLink = Int64Map()
    private var moreByLink: [Int64: [Int64]] = [:]
    /// Links added to a call after its insert (by a merged report), by its number.
    private var extraLinks: [Int64: [Int64]] = [:]
    /// Registrations under links of the calls in the ring (at least the live entries of
    /// `seqByLink`).
    private var liveLinks = 0
    /// The workload answering at each address lately seen or read, and when its row's last-seen
    /// time was last written.
    private(set) var endpoints: [String: (workloadID: Int64, seenMicros: Int64)] = [:]
    /// What `prefetch` read, kept so that its reads are not optimised away.
    private var touched: Int64 = 0
    static let endpointRefreshMicros: Int64 = 60_000_000
    static let endpointCapacity = 100_000

    /// An empty index to leave in the place of one moved out: shared, so leaving it costs nothing.
    static let placeholder = CallIndex(capacity: 0)

    /// - Parameters:
    ///   - windowMicros: how long a call stays findable, on the writer's clock.
    ///   - capacity: how many calls stay findable at most.
    init(windowMicros: Int64 = 120_000_000, capacity: Int = 100_000) {
        window = windowMicros
        self.capacity = capacity
        ring = Array(repeating: nil, count: min(1024, capacity + 1))
    }

    var count: Int { Int(tail - head) }

    private func position(_ seq: Int64) -> Int { Int(seq % Int64(ring.count)) }

    /// The live call numbered `seq`, if it is still in.
    private func live(_ seq: Int64) -> OpenCall? {
        guard seq >= head, let slot = ring[position(seq)], slot.live else { return nil }
        return slot.call
    }

    /// The call with this key, if it came lately.
    func call(forKey key: Int64) -> OpenCall? {
        seqByKey[key].flatMap(live)
    }

    /// The call stored in this row, if it came lately.
    func call(row: Int64) -> OpenCall? {
        seq(ofRow: row).flatMap(live)
    }

    /// The row id of the call numbered `seq`, which must be in (between `head` and `tail`).
    private func row(_ seq: Int64) -> Int64 {
        ring[position(seq)]!.call.rowID
    }

    /// The number of the call stored in `row`, if it is still in. Calls come in the order of
    /// their row ids, mostly consecutive ones, so a call's number is at most `head` plus its row's
    /// distance from the oldest row and at least `tail - 1` less its distance from the newest:
    /// one of the two is nearly always it, and otherwise a binary search between them finds it.
    /// No map by row is kept (whose every update and look-up would miss the cache).
    private func seq(ofRow row: Int64) -> Int64? {
        guard head < tail else { return nil }
        let first = self.row(head)
        let last = self.row(tail - 1)
        guard first <= row, row <= last else { return nil }
        var low = max(head, tail - 1 - (last - row))
        var high = min(tail - 1, head + (row - first))
        if self.row(high) == row { return high }
        while low < high {
            let middle = low + (high - low) / 2
            if self.row(middle) < row { low = middle + 1 } else { high = middle }
        }
        return self.row(low) == row ? low : nil
    }

    /// Visits the live calls registered under `link`, first registered first, until `body`
    /// returns false.
    func forEachCall(under link: Link, _ body: (OpenCall) -> Bool) {
        let hash = link.hash
        guard let first = seqByLink[hash] else { return }
        if let call = live(first), !body(call) { return }
        guard !moreByLink.isEmpty, let more = moreByLink[hash] else { return }
        for seq in more {
            if let call = live(seq), !body(call) { return }
        }
    }

    /// Reads ahead what looking up and registering these calls will read (`keys`: their
    /// `CallKey`s; `links`: the links they register and those of the other sides they look for),
    /// each a slot of a map and, for those in, of the ring likely far apart in memory. Touched
    /// in one pass, their cache misses overlap; met one at a time they would follow each other.
    mutating func prefetch(keys: [Int64], links: [Int64]) {
        var sum: Int64 = 0
        for key in keys { sum &+= seqByKey.touch(key) }
        for link in links where link != 0 { sum &+= seqByLink.touch(link) }
        ring.withUnsafeBytes { bytes in
            let stride = MemoryLayout<Slot?>.stride
            func touchRing(_ seq: Int64?) {
                guard let seq, seq >= head, seq < tail else { return }
                sum &+= Int64(bytes.load(fromByteOffset: position(seq) * stride, as: UInt8.self))
            }
            for key in keys { touchRing(seqByKey[key]) }
            for link in links where link != 0 { touchRing(seqByLink[link]) }
        }
        touched &+= sum
    }

    /// Takes the next row id, for a call about to be stored.
    mutating func takeRowID() -> Int64 {
        defer { nextRowID += 1 }
        return nextRowID
    }

    /// Row ids from here on are above every id written so far.
    mutating func rowIDs(after last: Int64) {
        nextRowID = max(nextRowID, last + 1)
    }

    /// Registers a stored call by its key and the links its other side may look for. Calls come
    /// in the order of their row ids (new calls take the next id; a rebuilt index inserts its
    /// rows in order).
    mutating func insert(_ call: OpenCall, atMicros now: Int64) {
        precondition(head == tail || call.rowID > row(tail - 1), "calls are registered in the order of their row ids")
        if count == ring.count { growRing() }
        let seq = tail
        tail += 1
        let hashes = call.linkHashes
        ring[position(seq)] = Slot(
            call: call, firstLink: hashes.first, secondLink: hashes.second, storedAtMicros: now, live: true)
        makeRoomForKey()
        seqByKey.updateValue(seq, forKey: call.key)
        add(seq, under: hashes.first)
        add(seq, under: hashes.second)
        rowIDs(after: call.rowID)
        expire(atMicros: now)
    }

    private mutating func growRing() {
        var larger = [Slot?](repeating: nil, count: max(min(ring.count * 2, capacity + 1), count + 1))
        for seq in head..<tail {
            larger[Int(seq % Int64(larger.count))] = ring[position(seq)]
        }
        ring = larger
    }

    /// Replaces a registered call with its row as it is now, adding the links it gained (from a
    /// merged report).
    mutating func update(_ call: OpenCall) {
        guard let seq = seq(ofRow: call.rowID), live(seq) != nil else { return }
        let at = position(seq)
        let had = ring[at]!.call.linkHashes
        ring[at]!.call = call
        let has = call.linkHashes
        guard has != had else { return }
        for hash in [has.first, has.second]
        where hash != 0 && hash != had.first && hash != had.second && !isRegistered(seq, under: hash) {
            add(seq, under: hash)
            extraLinks[seq, default: []].append(hash)
        }
    }

    private func isRegistered(_ seq: Int64, under hash: Int64) -> Bool {
        guard let first = seqByLink[hash] else { return false }
        return first == seq || (moreByLink[hash]?.contains(seq) ?? false)
    }

    private mutating func add(_ seq: Int64, under hash: Int64) {
        guard hash != 0 else { return }
        liveLinks += 1
        makeRoomForLink()
        guard let first = seqByLink.updateValue(seq, forKey: hash) else { return }
        // Taken: the calls registered before, those gone left out (so a link's list stays as
        // short as its calls in the index), keep their order, and this one comes last.
        var before = moreByLink.isEmpty ? [] : moreByLink.removeValue(forKey: hash) ?? []
        before.removeAll { $0 < head }
        if first >= head { before.insert(first, at: 0) }
        guard !before.isEmpty else { return }
        seqByLink.updateValue(before.removeFirst(), forKey: hash)
        before.append(seq)
        moreByLink[hash] = before
    }

    /// Before a key goes in: drops the keys of calls gone if the map would grow and they are a
    /// fifth of it or more (there are at most `count` others).
    private mutating func makeRoomForKey() {
        guard seqByKey.isFull, (seqByKey.count - count) * 5 >= seqByKey.count else { return }
        let head = self.head
        seqByKey.removeAll { $0 < head }
    }

    /// Before a link goes in: drops the links of calls gone, as `makeRoomForKey` does. Where
    /// the first call under a link is gone, the next one still in becomes first.
    private mutating func makeRoomForLink() {
        guard seqByLink.isFull, (seqByLink.count - liveLinks) * 5 >= seqByLink.count else { return }
        let head = self.head
        for (hash, more) in moreByLink {
            var left = more.filter { $0 >= head }
            if let first = seqByLink[hash], first < head, !left.isEmpty {
                seqByLink.updateValue(left.removeFirst(), forKey: hash)
            }
            moreByLink[hash] = left.isEmpty ? nil : left
        }
        seqByLink.removeAll { $0 < head }
    }

    /// Takes out the calls older than the window, and the oldest past the capacity. Their map
    /// entries stay, found by nothing, until the maps need the room.
    mutating func expire(atMicros now: Int64) {
        while head < tail {
            let at = position(head)
            guard count > capacity || ring[at]!.storedAtMicros < now - window else { break }
            liveLinks -= (ring[at]!.firstLink != 0 ? 1 : 0) + (ring[at]!.secondLink != 0 ? 1 : 0)
            if !extraLinks.isEmpty, let extra = extraLinks.removeValue(forKey: head) { liveLinks -= extra.count }
            ring[at] = nil
            head += 1
        }
    }

    /// Entries in the maps by key and by link, those of calls gone included (for tests).
    var mapEntries: (keys: Int, links: Int) { (seqByKey.count, seqByLink.count) }

    /// Remembers where a workload answers; past `endpointCapacity` addresses, starts afresh.
    mutating func remember(_ address: String, workloadID: Int64, seenMicros: Int64) {
        if endpoints.count >= Self.endpointCapacity, endpoints[address] == nil { endpoints.removeAll() }
        endpoints[address] = (workloadID, seenMicros)
    }

    /// Forgets the calls that started before `micros`, whose rows retention deleted: nothing is
    /// merged into them or paired with them any more. Their entries age out as usual.
    mutating func forget(startedBefore micros: Int64) {
        for seq in head..<tail {
            let at = position(seq)
            guard let slot = ring[at], slot.live, slot.call.sample.startMicros < micros else { continue }
            ring[at]!.live = false
            seqByKey.remove(slot.call.key, ifValueIs: seq)
        }
    }
}

/// The fields of a stored call that find the other side's report, as `CallIndex` links.
extension CallIndex.Link {
    /// The links under which the other side of a call with these fields registered.
    static func partnerLinks(
        reporter: Reporter, serviceID: Int64, requestID: UInt64?, traceID: TraceID?, spanID: SpanID?,
        parentSpanID: SpanID?
    ) -> (span: CallIndex.Link?, request: CallIndex.Link?) {
        var span: CallIndex.Link?
        if let traceID {
            // The server span's parent is the client span: the client looks for servers whose
            // parent is its span, the server for the client whose span is its parent.
            if reporter == .source, let spanID { span = .serverParent(trace: traceID, span: spanID) }
            if reporter == .destination, let parentSpanID { span = .clientSpan(trace: traceID, span: parentSpanID) }
        }
        let other: Reporter = reporter == .source ? .destination : .source
        return (span, requestID.map { CallIndex.Link.request(id: $0, serviceID: serviceID, reporter: other) })
    }
}
