internal import CZstd
import SextantModel

/// The calls one commit stored or changed, as one stored value: each call as it is after the
/// commit (`OpenCall`), column by column, label sets and strings once each, compressed with zstd.
///
/// A call is written again, whole, in the block of each later commit that merges a report into
/// it or pairs it, so a block is never rewritten: the newest block holding a call has it as it
/// is now (`isRevision` marks the entries that replace an earlier one). Calls change only while
/// `CallIndex` holds them, which is minutes at most, so a reader of a time range finds every
/// version among the blocks overlapping that range (a call keeps its start time).
///
/// The request id and the addresses are kept as the `TextHash` pairing compares, not as text:
/// nothing reads them back but pairing after a restart.
///
/// Layout (version 1): `version` byte, uncompressed size (varint), then a zstd frame of: entry
/// count, base start (µs), the strings, the label sets, then the columns (flags, row ids, call
/// keys where the call's fields do not give them, label set, starts, durations, request and
/// response bytes, sources, request id hashes, address hashes, trace ids, span ids, parent span
/// ids), each prefixed with its byte length.
enum CallBlock {
    static let version: UInt8 = 1
    static let compressionLevel: Int32 = 1

    /// One call in a block.
    struct Entry: Equatable {
        var call: OpenCall
        /// Whether an earlier block holds an older version of this call.
        var isRevision: Bool
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

        let base = entries.map(\.call.sample.startMicros).min() ?? 0
        var previousRow: Int64 = 0
        for entry in entries {
            let c = entry.call
            var bits: UInt8 = entry.isRevision ? Flag.revision : 0
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
            let facts = c.sample.facts
            let labelIndex: Int
            if let known = labelSets[facts] {
                labelIndex = known
            } else {
                labelIndex = labelSets.count
                labelSets[facts] = labelIndex
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
            }
            labels.varint(UInt64(labelIndex))
            starts.varint(UInt64(bitPattern: c.sample.startMicros &- base))
            durations.varint(zigzag(c.sample.durationMicros))
            requestBytes.varint(zigzag(c.sample.requestBytes))
            responseBytes.varint(zigzag(c.sample.responseBytes))
            sources.varint(UInt64(c.sample.sources))
        }

        var body = ByteWriter()
        body.varint(UInt64(entries.count))
        body.varint(zigzag(base))
        body.varint(UInt64(strings.count))
        body.out.append(contentsOf: stringList.out)
        body.varint(UInt64(labelSets.count))
        body.out.append(contentsOf: labelList.out)
        return BlockFrame.seal(
            version: version, body: body,
            columns: [
                flags, rows, keys, labels, starts, durations, requestBytes, responseBytes, sources, requestIDs, addresses,
                traces, spans, parents,
            ], level: compressionLevel)
    }

    /// Decodes a block written by `encode`, calling `visit` with each entry in order.
    static func decode(_ data: [UInt8], _ visit: (Entry) throws -> Void) throws {
        let body = try BlockFrame.open(data, version: version, kind: "call")
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
            try visit(Entry(call: call, isRevision: bits & Flag.revision != 0))
        }
    }

    private static func zigzag(_ value: Int64) -> UInt64 { BlockFrame.zigzag(value) }
    private static func unzigzag(_ value: UInt64) -> Int64 { BlockFrame.unzigzag(value) }
}
