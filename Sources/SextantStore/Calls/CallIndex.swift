import SextantModel

/// The calls the writer stored lately, by what finds them again: the call key that merges a resent
/// or second-channel report into its row, and the links that pair it with the other proxy's report
/// (the client span's id or the server span's parent, the request id). In memory, so that a call
/// costs no insert into an index on a random key; only the row ids are kept, and a look-up reads
/// the candidate rows by id (recent rows, in pages the writer just wrote).
///
/// A call stays findable for `window` of the writer's clock or until `capacity` later calls have
/// come, whichever is first: a report whose other side comes later than that stays unpaired, as
/// Istio counts a call seen from one side, and a resend later than that is stored again. After a
/// restart (or a failed commit) the index is rebuilt from the newest `capacity` rows.
///
/// A link's key is a hash: two links that collide both stay candidates, and the writer checks
/// each candidate's stored columns, so a collision costs a read, never a wrong pair.
struct CallIndex {
    /// How a report may name the other side of its call.
    enum Link: Hashable {
        /// A client span's report: the server span of the call has it as parent.
        case clientSpan(trace: String, span: String)
        /// A server span's report: its parent is the client span of the call.
        case serverParent(trace: String, span: String)
        /// The `x-request-id` both proxies saw, for one service and reporting side.
        case request(id: String, serviceID: Int64, reporter: Reporter)

        var hash: Int64 {
            var h = FNV1a()
            switch self {
            case .clientSpan(let trace, let span):
                h.add(UInt8(1))
                h.add(trace)
                h.add(span)
            case .serverParent(let trace, let span):
                h.add(UInt8(2))
                h.add(trace)
                h.add(span)
            case .request(let id, let serviceID, let reporter):
                h.add(UInt8(3))
                h.add(id)
                h.add(serviceID)
                h.add(reporter.rawValue)
            }
            return Int64(bitPattern: h.value)
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

    /// - Parameters:
    ///   - windowMicros: how long a call stays findable, on the writer's clock.
    ///   - capacity: how many calls stay findable at most.
    init(windowMicros: Int64 = 120_000_000, capacity: Int = 200_000) {
        window = windowMicros
        self.capacity = capacity
    }

    var count: Int { entries.count - head }

    /// The row of the call with this key, if it came lately.
    func row(forKey key: Int64) -> Int64? {
        rowsByKey[key]
    }

    /// The rows of calls that registered any of these links (candidates to check).
    func rows(linkedBy links: [Link]) -> [Int64] {
        var rows: [Int64] = []
        for hash in links.map(\.hash) {
            guard let first = rowsByLink[hash] else { continue }
            for row in [first] + (moreRowsByLink[hash] ?? []) where !rows.contains(row) { rows.append(row) }
        }
        return rows
    }

    /// Registers a stored call by its key and the links its other side may look for.
    mutating func insert(key: Int64, rowID: Int64, links: [Link], atMicros now: Int64) {
        let hashes = links.prefix(2).map(\.hash)
        rowsByKey[key] = rowID
        for hash in hashes { add(rowID, under: hash) }
        entries.append(
            Entry(
                key: key, rowID: rowID, firstLink: hashes.first ?? 0, secondLink: hashes.dropFirst().first ?? 0,
                storedAtMicros: now))
        expire(atMicros: now)
    }

    /// Adds links a merged report brought to a call already registered.
    mutating func addLinks(_ links: [Link], rowID: Int64) {
        for hash in links.map(\.hash) where !rows(under: hash).contains(rowID) {
            add(rowID, under: hash)
            extraLinks[rowID, default: []].append(hash)
        }
    }

    private func rows(under hash: Int64) -> [Int64] {
        guard let first = rowsByLink[hash] else { return [] }
        return [first] + (moreRowsByLink[hash] ?? [])
    }

    private mutating func add(_ rowID: Int64, under hash: Int64) {
        if rowsByLink[hash] == nil {
            rowsByLink[hash] = rowID
        } else {
            moreRowsByLink[hash, default: []].append(rowID)
        }
    }

    private mutating func remove(_ rowID: Int64, under hash: Int64) {
        guard hash != 0, let first = rowsByLink[hash] else { return }
        var more = moreRowsByLink[hash] ?? []
        if first == rowID {
            rowsByLink[hash] = more.isEmpty ? nil : more.removeFirst()
        } else {
            more.removeAll { $0 == rowID }
        }
        moreRowsByLink[hash] = more.isEmpty ? nil : more
    }

    /// Takes out the calls older than the window, and the oldest past the capacity.
    mutating func expire(atMicros now: Int64) {
        while head < entries.count, count > capacity || entries[head].storedAtMicros < now - window {
            let entry = entries[head]
            if rowsByKey[entry.key] == entry.rowID { rowsByKey[entry.key] = nil }
            remove(entry.rowID, under: entry.firstLink)
            remove(entry.rowID, under: entry.secondLink)
            for hash in extraLinks.removeValue(forKey: entry.rowID) ?? [] { remove(entry.rowID, under: hash) }
            head += 1
        }
        // Drop the expired prefix once it is most of the array.
        if head > 1024, head * 2 > entries.count {
            entries.removeFirst(head)
            head = 0
        }
    }
}

/// The fields of a stored call that find the other side's report, as `CallIndex` links.
extension CallIndex.Link {
    static func links(
        reporter: Reporter, serviceID: Int64, requestID: String?, traceID: String?, spanID: String?,
        parentSpanID: String?
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
        reporter: Reporter, serviceID: Int64, requestID: String?, traceID: String?, spanID: String?,
        parentSpanID: String?
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
