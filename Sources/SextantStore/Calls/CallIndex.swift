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
    /// `TextHash` of the `x-request-id`, of the local and of the remote address.
    var requestID: UInt64?
    var localAddress: UInt64?
    var remoteAddress: UInt64?
    var traceID: TraceID?
    var spanID: SpanID?
    var parentSpanID: SpanID?

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

    /// The links under which the other side's report finds this call.
    var links: [CallIndex.Link] {
        CallIndex.Link.links(
            reporter: reporter, serviceID: serviceID, requestID: requestID, traceID: traceID, spanID: spanID,
            parentSpanID: parentSpanID)
    }
}

/// A 64-bit hash of a text, for comparing texts the index does not keep (FNV-1a).
enum TextHash {
    static func of(_ text: String) -> UInt64 {
        var h = FNV1a()
        h.add(text)
        return h.value
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
            var h = FNV1a()
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

    /// What one stored call registered, to take it out again when it ages (a call has at most
    /// two links: its span's and its request id's; 0 for none).
    private struct Entry {
        var key: Int64
        var rowID: Int64
        var firstLink: Int64
        var secondLink: Int64
        var storedAtMicros: Int64
    }

    let window: Int64
    let capacity: Int
    /// The row id the next new call gets: one more than any row written.
    private(set) var nextRowID: Int64 = 1
    private var calls: [Int64: OpenCall] = [:]
    private var rowsByKey: [Int64: Int64] = [:]
    /// The first row under each link; `moreRowsByLink` holds any others (a request id that
    /// several calls carried, say), so that the common case costs no array.
    private var rowsByLink: [Int64: Int64] = [:]
    private var moreRowsByLink: [Int64: [Int64]] = [:]
    /// Links added to a call after its insert (by a merged report), by row.
    private var extraLinks: [Int64: [Int64]] = [:]
    /// Entries in the order they came; `head` is the oldest still in.
    private var entries: [Entry] = []
    private var head = 0
    /// The workload answering at each address lately seen or read, and when its row's last-seen
    /// time was last written.
    private(set) var endpoints: [String: (workloadID: Int64, seenMicros: Int64)] = [:]
    static let endpointRefreshMicros: Int64 = 60_000_000
    static let endpointCapacity = 100_000

    /// - Parameters:
    ///   - windowMicros: how long a call stays findable, on the writer's clock.
    ///   - capacity: how many calls stay findable at most.
    init(windowMicros: Int64 = 120_000_000, capacity: Int = 100_000) {
        window = windowMicros
        self.capacity = capacity
    }

    var count: Int { entries.count - head }

    /// The call with this key, if it came lately.
    func call(forKey key: Int64) -> OpenCall? {
        rowsByKey[key].flatMap { calls[$0] }
    }

    /// The call stored in this row, if it came lately.
    func call(row: Int64) -> OpenCall? {
        calls[row]
    }

    /// The calls that registered any of these links (candidates to check), oldest first.
    func calls(linkedBy links: [Link]) -> [OpenCall] {
        var rows: [Int64] = []
        for hash in links.map(\.hash) {
            guard let first = rowsByLink[hash] else { continue }
            for row in [first] + (moreRowsByLink[hash] ?? []) where !rows.contains(row) { rows.append(row) }
        }
        return rows.compactMap { calls[$0] }
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

    /// Registers a stored call by its key and the links its other side may look for.
    mutating func insert(_ call: OpenCall, atMicros now: Int64) {
        let hashes = call.linkHashes
        calls[call.rowID] = call
        rowsByKey[call.key] = call.rowID
        add(call.rowID, under: hashes.first)
        add(call.rowID, under: hashes.second)
        rowIDs(after: call.rowID)
        entries.append(
            Entry(
                key: call.key, rowID: call.rowID, firstLink: hashes.first, secondLink: hashes.second,
                storedAtMicros: now))
        expire(atMicros: now)
    }

    /// Replaces a registered call with its row as it is now, adding the links it gained (from a
    /// merged report).
    mutating func update(_ call: OpenCall) {
        guard let before = calls.updateValue(call, forKey: call.rowID) else {
            calls[call.rowID] = nil
            return
        }
        let had = before.linkHashes
        let has = call.linkHashes
        guard has != had else { return }
        for hash in [has.first, has.second]
        where hash != 0 && hash != had.first && hash != had.second && !rows(under: hash).contains(call.rowID) {
            add(call.rowID, under: hash)
            extraLinks[call.rowID, default: []].append(hash)
        }
    }

    private func rows(under hash: Int64) -> [Int64] {
        guard let first = rowsByLink[hash] else { return [] }
        return [first] + (moreRowsByLink[hash] ?? [])
    }

    private mutating func add(_ rowID: Int64, under hash: Int64) {
        guard hash != 0 else { return }
        if let first = rowsByLink.updateValue(rowID, forKey: hash) {
            // Taken: the first row stays first.
            rowsByLink[hash] = first
            moreRowsByLink[hash, default: []].append(rowID)
        }
    }

    private mutating func remove(_ rowID: Int64, under hash: Int64) {
        guard hash != 0 else { return }
        // Most links name one call: one look-up takes it out.
        guard !moreRowsByLink.isEmpty, var more = moreRowsByLink.removeValue(forKey: hash) else {
            if let first = rowsByLink.removeValue(forKey: hash), first != rowID { rowsByLink[hash] = first }
            return
        }
        if rowsByLink[hash] == rowID {
            rowsByLink[hash] = more.removeFirst()
        } else {
            more.removeAll { $0 == rowID }
        }
        if !more.isEmpty { moreRowsByLink[hash] = more }
    }

    /// Takes out the calls older than the window, and the oldest past the capacity.
    mutating func expire(atMicros now: Int64) {
        while head < entries.count, count > capacity || entries[head].storedAtMicros < now - window {
            let entry = entries[head]
            if let row = rowsByKey.removeValue(forKey: entry.key), row != entry.rowID { rowsByKey[entry.key] = row }
            calls[entry.rowID] = nil
            remove(entry.rowID, under: entry.firstLink)
            remove(entry.rowID, under: entry.secondLink)
            if !extraLinks.isEmpty {
                for hash in extraLinks.removeValue(forKey: entry.rowID) ?? [] { remove(entry.rowID, under: hash) }
            }
            head += 1
        }
        // Drop the expired prefix once it is most of the array.
        if head > 1024, head * 2 > entries.count {
            entries.removeFirst(head)
            head = 0
        }
    }

    /// Remembers where a workload answers; past `endpointCapacity` addresses, starts afresh.
    mutating func remember(_ address: String, workloadID: Int64, seenMicros: Int64) {
        if endpoints.count >= Self.endpointCapacity, endpoints[address] == nil { endpoints.removeAll() }
        endpoints[address] = (workloadID, seenMicros)
    }

    /// Forgets the calls that started before `micros`, whose rows retention deleted: nothing is
    /// merged into them or paired with them any more. Their entries age out as usual.
    mutating func forget(startedBefore micros: Int64) {
        let gone = calls.values.filter { $0.sample.startMicros < micros }
        for call in gone {
            calls[call.rowID] = nil
            if rowsByKey[call.key] == call.rowID { rowsByKey[call.key] = nil }
        }
    }
}

/// The fields of a stored call that find the other side's report, as `CallIndex` links.
extension CallIndex.Link {
    static func links(
        reporter: Reporter, serviceID: Int64, requestID: UInt64?, traceID: TraceID?, spanID: SpanID?,
        parentSpanID: SpanID?
    ) -> [CallIndex.Link] {
        var links: [CallIndex.Link] = []
        if let traceID {
            if reporter == .source, let spanID { links.append(.clientSpan(trace: traceID, span: spanID)) }
            if reporter == .destination, let parentSpanID { links.append(.serverParent(trace: traceID, span: parentSpanID)) }
        }
        if let requestID { links.append(.request(id: requestID, serviceID: serviceID, reporter: reporter)) }
        return links
    }

    /// The links under which the other side of a call with these fields registered.
    static func partnerLinks(
        reporter: Reporter, serviceID: Int64, requestID: UInt64?, traceID: TraceID?, spanID: SpanID?,
        parentSpanID: SpanID?
    ) -> (spans: [CallIndex.Link], requests: [CallIndex.Link]) {
        var spans: [CallIndex.Link] = []
        if let traceID {
            // The server span's parent is the client span: the client looks for servers whose
            // parent is its span, the server for the client whose span is its parent.
            if reporter == .source, let spanID { spans.append(.serverParent(trace: traceID, span: spanID)) }
            if reporter == .destination, let parentSpanID { spans.append(.clientSpan(trace: traceID, span: parentSpanID)) }
        }
        let other: Reporter = reporter == .source ? .destination : .source
        let requests = requestID.map { [CallIndex.Link.request(id: $0, serviceID: serviceID, reporter: other)] } ?? []
        return (spans, requests)
    }
}
