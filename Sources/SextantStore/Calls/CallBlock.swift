import SextantModel

/// The calls one commit stored or changed, as one stored value: each call as it is after the
/// commit (`OpenCall`), column by column, label sets and strings once each, compressed with zstd.
///
/// A call changed by a later commit is written again in that commit's block, so a block is never
/// rewritten. A pairing, or a report that only names the peer or adds a channel, changes nothing
/// but the call's labels and sources: the block then holds a `relabel` of a few bytes (row id,
/// label set, sources). A report that teaches the call an id or an address writes it again whole
/// (`call` marked `isRevision`). Readers take each call from the newest block holding it, with
/// the labels of the newest relabel met before (`CallVersions`). Calls change only while
/// `CallIndex` holds them, which is minutes at most, and keep their start time, so a reader of a
/// time range finds every version among the blocks overlapping that range.
///
/// The request id and the addresses are kept as the `TextHash` pairing compares, not as text:
/// nothing reads them back but pairing after a restart.
///
/// Layout (version 2): `version` byte, uncompressed size (varint), then a zstd frame of: entry
/// count, base start (µs), the strings, the label sets, then the columns (flags, row ids, call
/// keys where the call's fields do not give them, label set, starts, durations, request and
/// response bytes, sources, request id hashes, address hashes, trace ids, span ids, parent span
/// ids), each prefixed with its byte length; then the relabels: their count and three columns
/// (row ids, label sets, sources). Version 1 has no relabels.
enum CallBlock {
    static let version: UInt8 = 2
    static let compressionLevel: Int32 = 1

    /// One call in a block.
    enum Entry: Equatable {
        /// A call as it is after the commit; `isRevision` when an earlier block holds an older
        /// version of it.
        case call(OpenCall, isRevision: Bool)
        /// A call of an earlier block whose labels or sources changed, and nothing else.
        case relabel(rowID: Int64, facts: CallFacts, sources: Int)

        /// The entry that stores `call`, changed by this commit from `before` (nil: new).
        init(_ call: OpenCall, before: OpenCall?) {
            guard let before else {
                self = .call(call, isRevision: false)
                return
            }
            var relabelled = before
            relabelled.sample.facts = call.sample.facts
            relabelled.sample.sources = call.sample.sources
            self = relabelled == call
                ? .relabel(rowID: call.rowID, facts: call.sample.facts, sources: call.sample.sources)
                : .call(call, isRevision: true)
        }

        var rowID: Int64 {
            switch self {
            case .call(let call, _): call.rowID
            case .relabel(let rowID, _, _): rowID
            }
        }

        /// Whether an earlier block holds an older version of the entry's call.
        var isRevision: Bool {
            switch self {
            case .call(_, let isRevision): isRevision
            case .relabel: true
            }
        }
    }

    private enum Flag {
        static let revision: UInt8 = 1 << 0
        static let requestID: UInt8 = 1 << 1
        static let localAddress: UInt8 = 1 << 2
        static let remoteAddress: UInt8 = 1 << 3
        static let trace: UInt8 = 1 << 4
        static let span: UInt8 = 1 << 5
        static let parent: UInt8 = 1 << 6
        /// The call's key is the one its fields give (`CallKey.derived`), so it is not stored.
        static let derivedKey: UInt8 = 1 << 7
    }

    static func encode(_ entries: [Entry]) -> [UInt8] {
        var calls: [(call: OpenCall, isRevision: Bool)] = []
        var relabels: [(rowID: Int64, facts: CallFacts, sources: Int)] = []
        for entry in entries {
            switch entry {
            case .call(let call, let isRevision): calls.append((call, isRevision))
            case .relabel(let rowID, let facts, let sources): relabels.append((rowID, facts, sources))
            }
        }
        var strings: [String: Int] = [:]
        var stringList = ByteWriter()
        func string(_ s: String) -> UInt64 {
            if let known = strings[s] { return UInt64(known) }
            strings[s] = strings.count
            var s = s
            s.withUTF8 { stringList.bytes(UnsafeRawBufferPointer($0)) }
            return UInt64(strings.count - 1)
        }
        var labelSets: [CallFacts: Int] = [:]
        var labelList = ByteWriter()
        var flags = ByteWriter(), rows = ByteWriter(), keys = ByteWriter(), labels = ByteWriter()
        var starts = ByteWriter(), durations = ByteWriter(), requestBytes = ByteWriter()
        var responseBytes = ByteWriter(), sources = ByteWriter(), requestIDs = ByteWriter()
        var addresses = ByteWriter(), traces = ByteWriter(), spans = ByteWriter(), parents = ByteWriter()

        let base = calls.map(\.call.sample.startMicros).min() ?? 0
        var previousRow: Int64 = 0
        func labelSet(_ facts: CallFacts) -> Int {
            if let known = labelSets[facts] { return known }
            let index = labelSets.count
            labelSets[facts] = index
            labelList.varint(UInt64(facts.reporter))
            labelList.varint(UInt64(bitPattern: facts.proxyID))
            labelList.varint(UInt64(bitPattern: facts.peerID))
            labelList.varint(UInt64(bitPattern: facts.serviceID))
            labelList.varint(UInt64(facts.requestProtocol))
            labelList.varint(zigzag(Int64(facts.responseCode)))
            labelList.varint(zigzag(Int64(facts.grpcStatus)))
            labelList.varint(string(facts.responseFlags))
            labelList.varint(string(facts.securityPolicy))
            labelList.byte(facts.paired ? 1 : 0)
            return index
        }
        for (c, isRevision) in calls {
            var bits: UInt8 = isRevision ? Flag.revision : 0
            if let id = c.requestID { bits |= Flag.requestID; requestIDs.fixed64(id) }
            if let address = c.localAddress { bits |= Flag.localAddress; addresses.fixed64(address) }
            if let address = c.remoteAddress { bits |= Flag.remoteAddress; addresses.fixed64(address) }
            if let trace = c.traceID { bits |= Flag.trace; traces.fixed64(trace.high); traces.fixed64(trace.low) }
            if let span = c.spanID { bits |= Flag.span; spans.fixed64(span.value) }
            if let parent = c.parentSpanID { bits |= Flag.parent; parents.fixed64(parent.value) }
            if c.key == CallKey.derived(c) { bits |= Flag.derivedKey } else { keys.fixed64(UInt64(bitPattern: c.key)) }
            flags.byte(bits)
            rows.varint(zigzag(c.rowID &- previousRow))
            previousRow = c.rowID
            let labelIndex = labelSet(c.sample.facts)
            labels.varint(UInt64(labelIndex))
            starts.varint(UInt64(bitPattern: c.sample.startMicros &- base))
            durations.varint(zigzag(c.sample.durationMicros))
            requestBytes.varint(zigzag(c.sample.requestBytes))
            responseBytes.varint(zigzag(c.sample.responseBytes))
            sources.varint(UInt64(c.sample.sources))
        }

        var relabelRows = ByteWriter(), relabelLabels = ByteWriter(), relabelSources = ByteWriter()
        previousRow = 0
        for relabel in relabels {
            relabelRows.varint(zigzag(relabel.rowID &- previousRow))
            previousRow = relabel.rowID
            relabelLabels.varint(UInt64(labelSet(relabel.facts)))
            relabelSources.varint(UInt64(relabel.sources))
        }
        var relabelCount = ByteWriter()
        relabelCount.varint(UInt64(relabels.count))

        var body = ByteWriter()
        body.varint(UInt64(calls.count))
        body.varint(zigzag(base))
        body.varint(UInt64(strings.count))
        body.out.append(contentsOf: stringList.out)
        body.varint(UInt64(labelSets.count))
        body.out.append(contentsOf: labelList.out)
        return BlockFrame.seal(
            version: version, body: body,
            columns: [
                flags, rows, keys, labels, starts, durations, requestBytes, responseBytes, sources, requestIDs, addresses,
                traces, spans, parents, relabelCount, relabelRows, relabelLabels, relabelSources,
            ], level: compressionLevel)
    }

    /// Decodes a block written by `encode` (or by version 1), calling `visit` with each entry:
    /// calls in order, then relabels in order.
    static func decode(_ data: [UInt8], _ visit: (Entry) throws -> Void) throws {
        let (version, body) = try BlockFrame.open(data, versions: 1...version, kind: "call")
        var r = ByteReader(body[...])
        let count = Int(try r.varint())
        let base = unzigzag(try r.varint())
        let stringCount = Int(try r.varint())
        guard count <= body.count, stringCount <= body.count else {
            throw SpanBlock.FormatError(description: "call block counts exceed its size")
        }
        var strings: [String] = []
        strings.reserveCapacity(stringCount)
        for _ in 0..<stringCount { strings.append(try r.string()) }
        func string(_ index: UInt64) throws -> String {
            guard index < UInt64(strings.count) else { throw SpanBlock.FormatError(description: "call block string out of range") }
            return strings[Int(index)]
        }
        let labelCount = Int(try r.varint())
        guard labelCount <= body.count else { throw SpanBlock.FormatError(description: "call block counts exceed its size") }
        var labelSets: [CallFacts] = []
        labelSets.reserveCapacity(labelCount)
        for _ in 0..<labelCount {
            labelSets.append(
                CallFacts(
                    reporter: Int(try r.varint()), proxyID: Int64(bitPattern: try r.varint()),
                    peerID: Int64(bitPattern: try r.varint()), serviceID: Int64(bitPattern: try r.varint()),
                    requestProtocol: Int(try r.varint()), responseCode: Int(unzigzag(try r.varint())),
                    grpcStatus: Int(unzigzag(try r.varint())), responseFlags: try string(try r.varint()),
                    securityPolicy: try string(try r.varint()), paired: try r.byte() != 0))
        }
        var flags = try r.column(), rows = try r.column(), keys = try r.column(), labels = try r.column()
        var starts = try r.column(), durations = try r.column(), requestBytes = try r.column()
        var responseBytes = try r.column(), sources = try r.column(), requestIDs = try r.column()
        var addresses = try r.column(), traces = try r.column(), spans = try r.column(), parents = try r.column()

        var relabelCount = 0
        var relabelRows = ByteReader([][...]), relabelLabels = ByteReader([][...]), relabelSources = ByteReader([][...])
        if version >= 2 {
            var countColumn = try r.column()
            relabelCount = Int(try countColumn.varint())
            relabelRows = try r.column()
            relabelLabels = try r.column()
            relabelSources = try r.column()
            guard relabelCount <= body.count else { throw SpanBlock.FormatError(description: "call block counts exceed its size") }
        }

        var row: Int64 = 0
        for _ in 0..<count {
            let bits = try flags.byte()
            row &+= unzigzag(try rows.varint())
            let storedKey: Int64? = bits & Flag.derivedKey != 0 ? nil : Int64(bitPattern: try keys.fixed64())
            let labelIndex = try labels.varint()
            guard labelIndex < UInt64(labelSets.count) else {
                throw SpanBlock.FormatError(description: "call block label set out of range")
            }
            let duration = unzigzag(try durations.varint())
            let sample = CallSample(
                facts: labelSets[Int(labelIndex)], startMicros: base &+ Int64(bitPattern: try starts.varint()),
                durationMicros: duration, latencyBucket: LatencySketch.index(micros: duration),
                requestBytes: unzigzag(try requestBytes.varint()), responseBytes: unzigzag(try responseBytes.varint()),
                sources: Int(try sources.varint()))
            var call = OpenCall(
                rowID: row, key: storedKey ?? 0, sample: sample,
                requestID: bits & Flag.requestID != 0 ? try requestIDs.fixed64() : nil,
                localAddress: bits & Flag.localAddress != 0 ? try addresses.fixed64() : nil,
                remoteAddress: bits & Flag.remoteAddress != 0 ? try addresses.fixed64() : nil,
                traceID: bits & Flag.trace != 0 ? TraceID(high: try traces.fixed64(), low: try traces.fixed64()) : nil,
                spanID: bits & Flag.span != 0 ? SpanID(try spans.fixed64()) : nil,
                parentSpanID: bits & Flag.parent != 0 ? SpanID(try parents.fixed64()) : nil)
            if storedKey == nil { call.key = CallKey.derived(call) }
            try visit(.call(call, isRevision: bits & Flag.revision != 0))
        }
        row = 0
        for _ in 0..<relabelCount {
            row &+= unzigzag(try relabelRows.varint())
            let labelIndex = try relabelLabels.varint()
            guard labelIndex < UInt64(labelSets.count) else {
                throw SpanBlock.FormatError(description: "call block label set out of range")
            }
            try visit(.relabel(rowID: row, facts: labelSets[Int(labelIndex)], sources: Int(try relabelSources.varint())))
        }
    }

    private static func zigzag(_ value: Int64) -> UInt64 { BlockFrame.zigzag(value) }
    private static func unzigzag(_ value: UInt64) -> Int64 { BlockFrame.unzigzag(value) }
}

/// The newest version of each call, from call block entries met newest block first: the first
/// `call` entry met of a row is its newest whole version, with the labels and sources of the
/// newest relabel met before it; older entries of a row already given are stepped over.
struct CallVersions {
    private var given = Set<Int64>()
    private var relabels: [Int64: (facts: CallFacts, sources: Int)] = [:]

    /// The call as it is now, when `entry` is the newest whole version of its row not yet given.
    mutating func newest(_ entry: CallBlock.Entry) -> OpenCall? {
        switch entry {
        case .relabel(let rowID, let facts, let sources):
            if !given.contains(rowID), relabels[rowID] == nil { relabels[rowID] = (facts, sources) }
            return nil
        case .call(var call, let isRevision):
            guard !given.contains(call.rowID) else { return nil }
            if let relabel = relabels.removeValue(forKey: call.rowID) {
                call.sample.facts = relabel.facts
                call.sample.sources = relabel.sources
            }
            // A row's first version (not a revision) is its oldest: nothing older can follow.
            if isRevision { given.insert(call.rowID) }
            return call
        }
    }
}
