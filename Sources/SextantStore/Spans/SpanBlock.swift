package import SextantModel

/// The spans of one commit as one stored value: sorted by trace, column by column, every string
/// once in a dictionary, compressed with zstd.
///
/// Spans of one trace and one proxy repeat nearly everything but their ids, times and a few tag
/// values, so a block stores a span in a few dozen bytes where a row with indexes took over a
/// kilobyte, and a commit writes one row instead of one per span and index.
///
/// Layout (version 1): `version` byte, uncompressed size (varint), then a zstd frame of:
/// span count, the string dictionary, then the columns (trace runs, span ids, flags and kinds,
/// parent ids, names, start offsets from the block's first start, durations, endpoints,
/// annotations, tags), each prefixed with its byte length. Integers are LEB128 varints; times
/// that may go backwards are zigzag-encoded. A stored value may also be a group of blocks
/// (`group`): the writer stores a commit's blocks so, the compactor merges them into one.
package enum SpanBlock {
    static let version: UInt8 = 1
    /// zstd's level 1: most of the ratio of the default level at several times its speed.
    static let compressionLevel: Int32 = 1

    package struct FormatError: Error, CustomStringConvertible {
        package var description: String
    }

    /// Encodes spans in the order given (callers sort them by trace, see `sortedForBlock`).
    package static func encode(_ spans: [Span]) -> [UInt8] {
        // Each span is read in place, field by field: copied out whole, each of its strings
        // would be retained and released.
        spans.withUnsafeBufferPointer { spans in
            var base = Int64.max
            for i in spans.indices { base = min(base, spans[i].startMicros) }
            var columns = Columns(base: spans.isEmpty ? 0 : base, expecting: spans.count)
            for i in spans.indices {
                let span = spans.baseAddress! + i
                var bits: UInt8 = 0
                if span.pointee.parentID != nil { bits |= Flag.parent }
                if span.pointee.isError { bits |= Flag.error }
                if span.pointee.shared { bits |= Flag.shared }
                if span.pointee.debug { bits |= Flag.debug }
                if span.pointee.localEndpoint != nil { bits |= Flag.localEndpoint }
                if span.pointee.remoteEndpoint != nil { bits |= Flag.remoteEndpoint }
                let start = span.pointee.startMicros
                columns.span(
                    trace: span.pointee.traceID, id: span.pointee.spanID.value, parent: span.pointee.parentID?.value,
                    bits: bits, kind: UInt8(truncatingIfNeeded: span.pointee.kind.rawValue), start: start,
                    duration: span.pointee.durationMicros)
                withUTF8Bytes(of: span.pointee.name) { columns.name($0) }
                if let endpoint = span.pointee.localEndpoint { columns.endpoint(endpoint) }
                if let endpoint = span.pointee.remoteEndpoint { columns.endpoint(endpoint) }
                columns.count(annotations: span.pointee.annotations.count)
                for annotation in span.pointee.annotations {
                    withUTF8Bytes(of: annotation.value) {
                        columns.annotation(offset: annotation.timestampMicros &- start, value: $0)
                    }
                }
                columns.count(tags: span.pointee.tags.count)
                span.pointee.tags.forEachPair { key, value in columns.tag(key: key, value: value) }
            }
            return columns.sealed(count: spans.count)
        }
    }

    /// The columns of a block being written, span by span; strings go in as bytes, each distinct
    /// one once in the block's dictionary, in the order first given. A span's fields may be given
    /// in any order, but each column's values in span order.
    struct Columns {
        private var strings = StringTable()
        private var traces = ByteWriter()
        private var ids = ByteWriter()
        private var flags = ByteWriter()
        private var parents = ByteWriter()
        private var names = ByteWriter()
        private var starts = ByteWriter()
        private var durations = ByteWriter()
        private var endpoints = ByteWriter()
        private var annotations = ByteWriter()
        private var tags = ByteWriter()
        private let base: Int64
        private var run: (trace: TraceID, count: Int)?
        /// The previous span's tags, key and value indices by position; which tag comes next.
        private var previousTags: [UInt64] = []
        private var tagPosition = 0

        /// - Parameters:
        ///   - base: the earliest start of the block's spans; starts are stored after it.
        ///   - spans: how many spans are coming, if known: room for as many Envoy spans (20 tags,
        ///     a few strings of their own each) is made at once instead of growing every column
        ///     and the dictionary a doubling at a time.
        init(base: Int64, expecting spans: Int = 0) {
            self.base = base
            guard spans > 0 else { return }
            traces.out.reserveCapacity(17 * spans)
            ids.out.reserveCapacity(8 * spans)
            flags.out.reserveCapacity(2 * spans)
            parents.out.reserveCapacity(8 * spans)
            names.out.reserveCapacity(2 * spans)
            starts.out.reserveCapacity(5 * spans)
            durations.out.reserveCapacity(4 * spans)
            endpoints.out.reserveCapacity(10 * spans)
            annotations.out.reserveCapacity(spans)
            tags.out.reserveCapacity(64 * spans)
            strings.reserve(strings: 8 * spans, bytes: 256 * spans)
        }

        /// A span's fixed fields. `bits` are `Flag`s; `parent` is written when `bits` say so.
        mutating func span(trace: TraceID, id: UInt64, parent: UInt64?, bits: UInt8, kind: UInt8, start: Int64, duration: Int64) {
            if let current = run, current.trace == trace {
                run = (trace, current.count + 1)
            } else {
                if let current = run { traces.trace(current.trace, count: current.count) }
                run = (trace, 1)
            }
            ids.fixed64(id)
            flags.byte(bits)
            flags.byte(kind)
            if bits & Flag.parent != 0 { parents.fixed64(parent ?? 0) }
            starts.varint(UInt64(bitPattern: start &- base))
            durations.varint(UInt64(bitPattern: duration))
        }

        mutating func name(_ bytes: UnsafeRawBufferPointer) {
            names.varint(strings.index(bytes))
        }

        /// One of an endpoint's three strings (service, IPv4, IPv6), nil for none.
        mutating func endpointString(_ bytes: UnsafeRawBufferPointer?) {
            endpoints.varint(bytes.map { strings.index($0) + 1 } ?? 0)
        }

        mutating func endpointString(_ string: String?) {
            guard let string else { return endpointString(nil as UnsafeRawBufferPointer?) }
            withUTF8Bytes(of: string) { endpointString($0) }
        }

        /// An endpoint's three strings and its port.
        mutating func endpoint(_ endpoint: Span.Endpoint) {
            endpointString(endpoint.serviceName)
            endpointString(endpoint.ipv4)
            endpointString(endpoint.ipv6)
            endpointPort(UInt64(bitPattern: Int64(endpoint.port ?? 0)))
        }

        /// An endpoint's port, after its three strings.
        mutating func endpointPort(_ raw: UInt64) {
            endpoints.varint(raw)
        }

        mutating func count(annotations count: Int) {
            annotations.varint(UInt64(count))
        }

        /// An annotation, `offset` µs from its span's start.
        mutating func annotation(offset: Int64, value: UnsafeRawBufferPointer) {
            annotations.varint(zigzag(offset))
            annotations.varint(strings.index(value))
        }

        mutating func count(tags count: Int) {
            tags.varint(UInt64(count))
            tagPosition = 0
        }

        mutating func tag(key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) {
            // The spans of a block mostly carry the same tags in the same order, many with the
            // same values: the previous span's string at this position is tried first, one
            // compare instead of a hash and a probe.
            let at = 2 * tagPosition
            tagPosition += 1
            if at == previousTags.count { previousTags.append(contentsOf: [.max, .max]) }
            let k = strings.index(key, guess: previousTags[at])
            let v = strings.index(value, guess: previousTags[at + 1])
            previousTags[at] = k
            previousTags[at + 1] = v
            tags.varint(k)
            tags.varint(v)
        }

        /// The block of the `count` spans given.
        consuming func sealed(count: Int) -> [UInt8] {
            if let current = run { traces.trace(current.trace, count: current.count) }
            var body = ByteWriter()
            body.varint(UInt64(count))
            body.varint(UInt64(bitPattern: base))
            body.varint(UInt64(strings.count))
            body.out.append(contentsOf: strings.encoded.out)
            return BlockFrame.seal(
                version: version, body: body,
                columns: [traces, ids, flags, parents, names, starts, durations, endpoints, annotations, tags],
                level: compressionLevel)
        }
    }

    /// What a read wants of a block; spans that cannot match are stepped over without making
    /// their strings, so a look-up costs little more than decompressing the block.
    package struct Selection: Sendable {
        /// Only these traces' spans.
        package var traces: Set<TraceID>?
        /// Only spans whose local service is this (spans without one are `unknown`).
        package var service: String?
        package var minDurationMicros: Int64?
        package var maxDurationMicros: Int64?
        package var fromMicros: Int64?
        package var toMicros: Int64?
        package var errorOnly = false

        package init(traces: Set<TraceID>? = nil) {
            self.traces = traces
        }
    }

    private static func withUTF8Bytes(of string: String, _ body: (UnsafeRawBufferPointer) -> Void) {
        var string = string
        string.withUTF8 { body(UnsafeRawBufferPointer($0)) }
    }

    /// The version byte of a group: several blocks stored as one value (`group`).
    static let groupVersion: UInt8 = 2

    /// Several encoded blocks as one stored value, as the writer stores the blocks of a commit's
    /// requests: `groupVersion`, the number of blocks (varint), then each block's length (varint)
    /// and bytes. One block is stored as it is.
    static func group(_ blocks: [[UInt8]]) -> [UInt8] {
        if blocks.count == 1 { return blocks[0] }
        var out = ByteWriter()
        out.byte(groupVersion)
        out.varint(UInt64(blocks.count))
        for block in blocks {
            out.varint(UInt64(block.count))
            out.out.append(contentsOf: block)
        }
        return out.out
    }

    /// The blocks a stored value holds: the parts of a group, or the value itself.
    static func parts(of data: [UInt8]) throws(FormatError) -> [[UInt8]] {
        guard data.first == groupVersion else { return [data] }
        var reader = ByteReader(data[1...])
        let count = try reader.varint()
        guard count <= UInt64(data.count) else { throw FormatError(description: "span block group counts exceed its size") }
        var parts: [[UInt8]] = []
        parts.reserveCapacity(Int(count))
        for _ in 0..<count { parts.append(Array(try reader.slice())) }
        guard reader.remaining == 0 else { throw FormatError(description: "span block group has bytes after its blocks") }
        return parts
    }

    /// Decodes a stored block (a block written by `encode`, or a group of them): every span, or
    /// those `selection` may want (callers check conditions it does not hold, such as names and
    /// tags).
    package static func decode(_ data: [UInt8], selection: Selection? = nil) throws(FormatError) -> [Span] {
        let parts = try parts(of: data)
        if parts.count == 1 { return try decodeBlock(parts[0], selection: selection) }
        var spans: [Span] = []
        for part in parts { spans += try decodeBlock(part, selection: selection) }
        return spans
    }

    private static func decodeBlock(_ data: [UInt8], selection: Selection?) throws(FormatError) -> [Span] {
        var reader = try Reader(data)
        let dictionary = reader.strings
        var strings = [String?](repeating: nil, count: dictionary.count)
        /// The string at `index`, made the first time it is asked for.
        func string(_ index: UInt64) throws(FormatError) -> String {
            let slice = try Reader.string(index, of: dictionary)
            if let made = strings[Int(index)] { return made }
            let made = String(decoding: slice, as: UTF8.self)
            strings[Int(index)] = made
            return made
        }
        func endpoint(_ raw: RawSpan.Endpoint) throws(FormatError) -> Span.Endpoint {
            let port = Int(truncatingIfNeeded: Int64(bitPattern: raw.port))
            func optional(_ index: UInt64) throws(FormatError) -> String? { index == 0 ? nil : try string(index - 1) }
            return Span.Endpoint(
                serviceName: try optional(raw.service), ipv4: try optional(raw.ipv4), ipv6: try optional(raw.ipv6),
                port: port == 0 ? nil : port)
        }
        // The wanted service as its dictionary index plus one (the endpoint encoding); a block
        // without that string holds none of its spans. `unknown` also stands for no service.
        var serviceIndex: UInt64?
        if let service = selection?.service, service != "unknown" {
            let utf8 = Array(service.utf8)
            guard let found = reader.strings.firstIndex(where: { $0.elementsEqual(utf8) }) else { return [] }
            serviceIndex = UInt64(found) + 1
        }

        var spans: [Span] = []
        if selection == nil { spans.reserveCapacity(reader.count) }
        // Spans of one trace come together: its membership is looked up once.
        var lastTrace: (id: TraceID, wanted: Bool)?
        while let raw = try reader.next() {
            if let selection {
                if let traces = selection.traces {
                    if lastTrace?.id != raw.trace { lastTrace = (raw.trace, traces.contains(raw.trace)) }
                    if lastTrace?.wanted == false { continue }
                }
                if let min = selection.minDurationMicros, raw.duration < min { continue }
                if let max = selection.maxDurationMicros, raw.duration > max { continue }
                if let from = selection.fromMicros, raw.start < from { continue }
                if let to = selection.toMicros, raw.start > to { continue }
                if selection.errorOnly, raw.bits & Flag.error == 0 { continue }
                if let serviceIndex, raw.local?.service != serviceIndex { continue }
            }
            var annotations: [Span.Annotation] = []
            try reader.annotations { count in
                annotations.reserveCapacity(count)
            } each: { offset, value throws(FormatError) in
                annotations.append(Span.Annotation(timestampMicros: raw.start &+ offset, value: try string(value)))
            }
            var tags = Attributes()
            try reader.tags { count in
                tags = Attributes(minimumCapacity: count)
            } each: { key, value throws(FormatError) in
                let k = try Reader.string(key, of: dictionary)
                let v = try Reader.string(value, of: dictionary)
                k.withUnsafeBytes { k in v.withUnsafeBytes { v in tags.appendNew(key: k, value: v) } }
            }
            spans.append(
                Span(
                    traceID: raw.trace, spanID: SpanID(raw.id), parentID: raw.parent.map(SpanID.init),
                    kind: Span.Kind(rawValue: Int(raw.kind)) ?? .unspecified, name: try string(raw.name),
                    startMicros: raw.start, durationMicros: raw.duration, localEndpoint: try raw.local.map(endpoint),
                    remoteEndpoint: try raw.remote.map(endpoint), annotations: annotations, tags: tags,
                    isError: raw.bits & Flag.error != 0, shared: raw.bits & Flag.shared != 0,
                    debug: raw.bits & Flag.debug != 0))
        }
        return spans
    }

    /// A span as its block stores it: strings as indices into the block's dictionary.
    struct RawSpan {
        /// An endpoint's strings as dictionary index plus one (0 for none), and its port.
        struct Endpoint: Equatable {
            var service, ipv4, ipv6, port: UInt64
        }

        var trace: TraceID
        var id: UInt64
        var parent: UInt64?
        /// `Flag`s.
        var bits: UInt8
        var kind: UInt8
        var name: UInt64
        var start: Int64
        var duration: Int64
        var local: Endpoint?
        var remote: Endpoint?
    }

    /// Reads a block span by span without making its strings: `next` gives a span's fixed fields,
    /// then `annotations` and `tags` may read its lists (those not read are stepped over).
    struct Reader {
        /// Spans in the block.
        let count: Int
        /// The block's dictionary.
        let strings: [ArraySlice<UInt8>]
        private let base: Int64
        private var traces, ids, flags, parents, names, starts, durations, endpoints, annotationColumn, tagColumn: ByteReader
        private var read = 0
        private var trace = TraceID(high: 0, low: 0)
        private var left = 0
        private var annotationsPending = false
        private var tagsPending = false

        init(_ data: [UInt8]) throws(FormatError) {
            let body = try BlockFrame.open(data, version: version, kind: "span")
            var r = ByteReader(body[...])
            count = Int(try r.varint())
            base = Int64(bitPattern: try r.varint())
            let stringCount = Int(try r.varint())
            guard count <= body.count, stringCount <= body.count else { throw FormatError(description: "span block counts exceed its size") }
            var strings: [ArraySlice<UInt8>] = []
            strings.reserveCapacity(stringCount)
            for _ in 0..<stringCount { strings.append(try r.slice()) }
            self.strings = strings
            traces = try r.column()
            ids = try r.column()
            flags = try r.column()
            parents = try r.column()
            names = try r.column()
            starts = try r.column()
            durations = try r.column()
            endpoints = try r.column()
            annotationColumn = try r.column()
            tagColumn = try r.column()
        }

        /// The bytes of string `index` of a block's dictionary.
        static func string(_ index: UInt64, of strings: [ArraySlice<UInt8>]) throws(FormatError) -> ArraySlice<UInt8> {
            guard index < strings.count else { throw FormatError(description: "span block string \(index) out of range") }
            return strings[Int(index)]
        }

        /// The next span's fixed fields; nil after the last.
        mutating func next() throws(FormatError) -> RawSpan? {
            if annotationsPending { try annotations { _ in } each: { _, _ in } }
            if tagsPending { try tags { _ in } each: { _, _ in } }
            guard read < count else { return nil }
            read += 1
            if left == 0 {
                trace = TraceID(high: try traces.fixed64(), low: try traces.fixed64())
                left = Int(try traces.varint())
                guard left > 0 else { throw FormatError(description: "span block trace run of no spans") }
            }
            left -= 1
            let id = try ids.fixed64()
            let bits = try flags.byte()
            let kind = try flags.byte()
            let parent = bits & Flag.parent != 0 ? try parents.fixed64() : nil
            let name = try names.varint()
            let start = base &+ Int64(bitPattern: try starts.varint())
            let duration = Int64(bitPattern: try durations.varint())
            let local = bits & Flag.localEndpoint != 0 ? try endpoint() : nil
            let remote = bits & Flag.remoteEndpoint != 0 ? try endpoint() : nil
            annotationsPending = true
            tagsPending = true
            return RawSpan(
                trace: trace, id: id, parent: parent, bits: bits, kind: kind, name: name, start: start,
                duration: duration, local: local, remote: remote)
        }

        private mutating func endpoint() throws(FormatError) -> RawSpan.Endpoint {
            RawSpan.Endpoint(
                service: try endpoints.varint(), ipv4: try endpoints.varint(), ipv6: try endpoints.varint(),
                port: try endpoints.varint())
        }

        /// The last span's annotations: their count, then each one's offset from the span's start
        /// and value index (not checked against the dictionary).
        mutating func annotations(
            count: (Int) -> Void, each: (_ offset: Int64, _ value: UInt64) throws(FormatError) -> Void
        ) throws(FormatError) {
            guard annotationsPending else { return }
            annotationsPending = false
            try Self.pairs(in: &annotationColumn, noun: "annotation", count: count) { offset, value throws(FormatError) in
                try each(unzigzag(offset), value)
            }
        }

        /// The last span's tags: their count, then each one's key and value indices (not checked
        /// against the dictionary).
        mutating func tags(
            count: (Int) -> Void, each: (_ key: UInt64, _ value: UInt64) throws(FormatError) -> Void
        ) throws(FormatError) {
            guard tagsPending else { return }
            tagsPending = false
            try Self.pairs(in: &tagColumn, noun: "tag", count: count, each: each)
        }

        /// A list of one span in `column`: its count, then that many pairs of varints.
        private static func pairs(
            in column: inout ByteReader, noun: String, count: (Int) -> Void,
            each: (UInt64, UInt64) throws(FormatError) -> Void
        ) throws(FormatError) {
            let n = Int(try column.varint())
            guard n <= column.remaining else { throw FormatError(description: "span block \(noun) count exceeds its column") }
            count(n)
            for _ in 0..<n { try each(try column.varint(), try column.varint()) }
        }
    }

    /// Spans in block order: by trace, then start, then span id.
    package static func sortedForBlock(_ spans: [Span]) -> [Span] {
        // The keys are sorted with each span's position, and each span is then moved once, not
        // at every step of the sort. Equal keys keep their order.
        var order = spans.indices.map { i in
            (spans[i].traceID.high, spans[i].traceID.low, spans[i].startMicros, spans[i].spanID.value, i)
        }
        order.sort { $0 < $1 }
        if order.indices.allSatisfy({ order[$0].4 == $0 }) { return spans }
        return order.map { spans[$0.4] }
    }

    enum Flag {
        static let parent: UInt8 = 1
        static let error: UInt8 = 2
        static let shared: UInt8 = 4
        static let debug: UInt8 = 8
        static let localEndpoint: UInt8 = 16
        static let remoteEndpoint: UInt8 = 32
    }

    static func zigzag(_ value: Int64) -> UInt64 { BlockFrame.zigzag(value) }
    static func unzigzag(_ value: UInt64) -> Int64 { BlockFrame.unzigzag(value) }
}

/// Each distinct string of a block once, in first-seen order, found by its bytes.
private struct StringTable {
    /// The strings as the block stores them: each one's length, then its bytes.
    var encoded = ByteWriter()
    private(set) var count = 0
    private var indices = ByteKeyedIndex(limit: .max)

    mutating func reserve(strings: Int, bytes: Int) {
        encoded.out.reserveCapacity(bytes + 2 * strings)
        indices.reserve(strings, bytes: bytes)
    }

    /// The index of `bytes`, trying string `guess` first (any value).
    mutating func index(_ bytes: UnsafeRawBufferPointer, guess: UInt64) -> UInt64 {
        if guess < UInt64(count), indices.holds(bytes, at: Int(guess)) { return guess }
        return index(bytes)
    }

    mutating func index(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        // Never nil: no limit.
        let (index, isNew) = indices.index(bytes)!
        if isNew {
            encoded.bytes(bytes)
            count += 1
        }
        return UInt64(index)
    }
}

struct ByteWriter {
    var out: [UInt8] = []

    mutating func byte(_ value: UInt8) { out.append(value) }

    mutating func varint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            out.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
    }

    mutating func fixed64(_ value: UInt64) {
        withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) }
    }

    mutating func bytes(_ bytes: UnsafeRawBufferPointer) {
        varint(UInt64(bytes.count))
        out.append(contentsOf: bytes)
    }

    mutating func string(_ text: String) {
        var text = text
        text.withUTF8 { bytes(UnsafeRawBufferPointer($0)) }
    }

    mutating func trace(_ trace: TraceID, count: Int) {
        fixed64(trace.high)
        fixed64(trace.low)
        varint(UInt64(count))
    }
}

struct ByteReader {
    private let bytes: ArraySlice<UInt8>
    private(set) var position = 0

    init(_ bytes: ArraySlice<UInt8>) {
        self.bytes = bytes
    }

    var remaining: Int { bytes.count - position }

    private func short() -> SpanBlock.FormatError { SpanBlock.FormatError(description: "block ends early") }

    mutating func byte() throws(SpanBlock.FormatError) -> UInt8 {
        guard position < bytes.count else { throw short() }
        defer { position += 1 }
        return bytes[bytes.startIndex + position]
    }

    mutating func varint() throws(SpanBlock.FormatError) -> UInt64 {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let b = try byte()
            guard shift < 64 else { throw SpanBlock.FormatError(description: "block varint too long") }
            value |= UInt64(b & 0x7F) << shift
            if b < 0x80 { return value }
            shift += 7
        }
    }

    mutating func fixed64() throws(SpanBlock.FormatError) -> UInt64 {
        guard remaining >= 8 else { throw short() }
        var value: UInt64 = 0
        for i in 0..<8 { value |= UInt64(bytes[bytes.startIndex + position + i]) << (8 * UInt64(i)) }
        position += 8
        return value
    }

    mutating func slice() throws(SpanBlock.FormatError) -> ArraySlice<UInt8> {
        let length = try varint()
        guard length <= UInt64(remaining) else { throw short() }
        let start = bytes.startIndex + position
        position += Int(length)
        return bytes[start..<(start + Int(length))]
    }

    mutating func string() throws(SpanBlock.FormatError) -> String {
        let utf8 = try slice()
        return String(decoding: utf8, as: UTF8.self)
    }

    mutating func column() throws(SpanBlock.FormatError) -> ByteReader {
        ByteReader(try slice())
    }
}

/// The frame of a stored block (spans, calls): a version byte, the size of the body (varint), then
/// the body compressed with zstd. A body ends with its columns, each prefixed with its byte length.
enum BlockFrame {
    /// `body` followed by `columns`, framed.
    static func seal(version: UInt8, body: ByteWriter, columns: [ByteWriter], level: Int32) -> [UInt8] {
        var body = body
        body.out.reserveCapacity(body.out.count + columns.reduce(0) { $0 + 10 + $1.out.count })
        for column in columns {
            body.varint(UInt64(column.out.count))
            body.out.append(contentsOf: column.out)
        }
        var header = ByteWriter()
        header.byte(version)
        header.varint(UInt64(body.out.count))
        return Zstd.compress(body.out, level: level, after: header.out)
    }

    /// The body of a framed block; `kind` names the block in errors.
    static func open(_ data: [UInt8], version: UInt8, kind: String) throws(SpanBlock.FormatError) -> [UInt8] {
        try open(data, versions: version...version, kind: kind).body
    }

    /// The version and body of a framed block of one of `versions`.
    static func open(
        _ data: [UInt8], versions: ClosedRange<UInt8>, kind: String
    ) throws(SpanBlock.FormatError) -> (version: UInt8, body: [UInt8]) {
        guard let version = data.first, versions.contains(version) else {
            throw SpanBlock.FormatError(description: "\(kind) block of an unknown version")
        }
        var header = ByteReader(data[1...])
        let size = try header.varint()
        guard size < 1 << 31 else { throw SpanBlock.FormatError(description: "\(kind) block larger than 2 GiB") }
        return (version, try Zstd.decompress(data[(1 + header.position)...], size: Int(size)))
    }

    static func zigzag(_ value: Int64) -> UInt64 { UInt64(bitPattern: (value << 1) ^ (value >> 63)) }
    static func unzigzag(_ value: UInt64) -> Int64 { Int64(bitPattern: value >> 1) ^ -Int64(bitPattern: value & 1) }
}
