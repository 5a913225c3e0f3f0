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
/// that may go backwards are zigzag-encoded.
package enum SpanBlock {
    static let version: UInt8 = 1
    /// zstd's level 1: most of the ratio of the default level at several times its speed.
    static let compressionLevel: Int32 = 1

    package struct FormatError: Error, CustomStringConvertible {
        package var description: String
    }

    /// Encodes spans in the order given (callers sort them by trace, see `sortedForBlock`).
    package static func encode(_ spans: [Span]) -> [UInt8] {
        var strings = StringTable()
        var traces = ByteWriter()
        var ids = ByteWriter()
        var flags = ByteWriter()
        var parents = ByteWriter()
        var names = ByteWriter()
        var starts = ByteWriter()
        var durations = ByteWriter()
        var endpoints = ByteWriter()
        var annotations = ByteWriter()
        var tags = ByteWriter()

        let base = spans.map(\.startMicros).min() ?? 0
        var run: (trace: TraceID, count: Int)?
        for span in spans {
            if let current = run, current.trace == span.traceID {
                run = (current.trace, current.count + 1)
            } else {
                if let current = run { traces.trace(current.trace, count: current.count) }
                run = (span.traceID, 1)
            }
            ids.fixed64(span.spanID.value)
            var bits: UInt8 = 0
            if span.parentID != nil { bits |= Flag.parent }
            if span.isError { bits |= Flag.error }
            if span.shared { bits |= Flag.shared }
            if span.debug { bits |= Flag.debug }
            if span.localEndpoint != nil { bits |= Flag.localEndpoint }
            if span.remoteEndpoint != nil { bits |= Flag.remoteEndpoint }
            flags.byte(bits)
            flags.byte(UInt8(truncatingIfNeeded: span.kind.rawValue))
            if let parent = span.parentID { parents.fixed64(parent.value) }
            names.varint(strings.index(span.name))
            starts.varint(UInt64(bitPattern: span.startMicros &- base))
            durations.varint(UInt64(bitPattern: span.durationMicros))
            for endpoint in [span.localEndpoint, span.remoteEndpoint] {
                guard let endpoint else { continue }
                endpoints.varint(strings.optionalIndex(endpoint.serviceName))
                endpoints.varint(strings.optionalIndex(endpoint.ipv4))
                endpoints.varint(strings.optionalIndex(endpoint.ipv6))
                endpoints.varint(UInt64(bitPattern: Int64(endpoint.port ?? 0)))
            }
            annotations.varint(UInt64(span.annotations.count))
            for annotation in span.annotations {
                annotations.varint(zigzag(annotation.timestampMicros &- span.startMicros))
                annotations.varint(strings.index(annotation.value))
            }
            tags.varint(UInt64(span.tags.count))
            span.tags.forEachPair { key, value in
                tags.varint(strings.index(key))
                tags.varint(strings.index(value))
            }
        }
        if let current = run { traces.trace(current.trace, count: current.count) }

        var body = ByteWriter()
        body.varint(UInt64(spans.count))
        body.varint(UInt64(bitPattern: base))
        body.varint(UInt64(strings.count))
        body.out.append(contentsOf: strings.encoded.out)
        return BlockFrame.seal(
            version: version, body: body,
            columns: [traces, ids, flags, parents, names, starts, durations, endpoints, annotations, tags],
            level: compressionLevel)
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

    /// Decodes a block written by `encode`: every span, or those `selection` may want (callers
    /// check conditions it does not hold, such as names and tags).
    package static func decode(_ data: [UInt8], selection: Selection? = nil) throws(FormatError) -> [Span] {
        let body = try BlockFrame.open(data, version: version, kind: "span")
        var r = ByteReader(body[...])
        let count = Int(try r.varint())
        let base = Int64(bitPattern: try r.varint())
        let stringCount = Int(try r.varint())
        guard count <= body.count, stringCount <= body.count else { throw FormatError(description: "span block counts exceed its size") }
        var stringSlices: [ArraySlice<UInt8>] = []
        stringSlices.reserveCapacity(stringCount)
        for _ in 0..<stringCount { stringSlices.append(try r.slice()) }
        var strings = [String?](repeating: nil, count: stringCount)
        var traces = try r.column()
        var ids = try r.column()
        var flags = try r.column()
        var parents = try r.column()
        var names = try r.column()
        var starts = try r.column()
        var durations = try r.column()
        var endpoints = try r.column()
        var annotations = try r.column()
        var tags = try r.column()

        /// The string at `index`, made the first time it is asked for.
        func string(_ index: UInt64) throws(FormatError) -> String {
            guard index < stringCount else { throw FormatError(description: "span block string \(index) out of range") }
            if let made = strings[Int(index)] { return made }
            let made = String(decoding: stringSlices[Int(index)], as: UTF8.self)
            strings[Int(index)] = made
            return made
        }
        func optionalString(_ index: UInt64) throws(FormatError) -> String? {
            index == 0 ? nil : try string(index - 1)
        }
        func endpoint(_ raw: (UInt64, UInt64, UInt64, UInt64)) throws(FormatError) -> Span.Endpoint {
            let port = Int(truncatingIfNeeded: Int64(bitPattern: raw.3))
            return Span.Endpoint(
                serviceName: try optionalString(raw.0), ipv4: try optionalString(raw.1), ipv6: try optionalString(raw.2),
                port: port == 0 ? nil : port)
        }
        func rawEndpoint() throws(FormatError) -> (UInt64, UInt64, UInt64, UInt64) {
            (try endpoints.varint(), try endpoints.varint(), try endpoints.varint(), try endpoints.varint())
        }
        func skip(_ column: inout ByteReader, varints: Int) throws(FormatError) {
            for _ in 0..<varints { _ = try column.varint() }
        }
        // The wanted service as its dictionary index plus one (the endpoint encoding); a block
        // without that string holds none of its spans. `unknown` also stands for no service.
        var serviceIndex: UInt64?
        if let service = selection?.service, service != "unknown" {
            let utf8 = Array(service.utf8)
            guard let found = stringSlices.firstIndex(where: { $0.elementsEqual(utf8) }) else { return [] }
            serviceIndex = UInt64(found) + 1
        }

        var spans: [Span] = []
        if selection == nil { spans.reserveCapacity(count) }
        var trace = TraceID(high: 0, low: 0)
        var traceWanted = true
        var left = 0
        for _ in 0..<count {
            if left == 0 {
                trace = TraceID(high: try traces.fixed64(), low: try traces.fixed64())
                left = Int(try traces.varint())
                guard left > 0 else { throw FormatError(description: "span block trace run of no spans") }
                traceWanted = selection?.traces?.contains(trace) ?? true
            }
            left -= 1
            let spanID = SpanID(try ids.fixed64())
            let bits = try flags.byte()
            let kind = Span.Kind(rawValue: Int(try flags.byte())) ?? .unspecified
            let parent = bits & Flag.parent != 0 ? SpanID(try parents.fixed64()) : nil
            let nameIndex = try names.varint()
            let start = base &+ Int64(bitPattern: try starts.varint())
            let duration = Int64(bitPattern: try durations.varint())
            let local = bits & Flag.localEndpoint != 0 ? try rawEndpoint() : nil
            let remote = bits & Flag.remoteEndpoint != 0 ? try rawEndpoint() : nil
            var keep = traceWanted
            if keep, let selection {
                if let min = selection.minDurationMicros, duration < min { keep = false }
                if let max = selection.maxDurationMicros, duration > max { keep = false }
                if let from = selection.fromMicros, start < from { keep = false }
                if let to = selection.toMicros, start > to { keep = false }
                if selection.errorOnly, bits & Flag.error == 0 { keep = false }
                if let serviceIndex, local?.0 != serviceIndex { keep = false }
            }
            guard keep else {
                let annotationCount = Int(try annotations.varint())
                guard annotationCount <= annotations.remaining else { throw FormatError(description: "span block annotation count exceeds its column") }
                try skip(&annotations, varints: 2 * annotationCount)
                let tagCount = Int(try tags.varint())
                guard tagCount <= tags.remaining else { throw FormatError(description: "span block tag count exceeds its column") }
                try skip(&tags, varints: 2 * tagCount)
                continue
            }
            let annotationCount = Int(try annotations.varint())
            guard annotationCount <= annotations.remaining else { throw FormatError(description: "span block annotation count exceeds its column") }
            var spanAnnotations: [Span.Annotation] = []
            spanAnnotations.reserveCapacity(annotationCount)
            for _ in 0..<annotationCount {
                let offset = unzigzag(try annotations.varint())
                spanAnnotations.append(Span.Annotation(timestampMicros: start &+ offset, value: try string(try annotations.varint())))
            }
            let tagCount = Int(try tags.varint())
            guard tagCount <= tags.remaining else { throw FormatError(description: "span block tag count exceeds its column") }
            var spanTags = Attributes(minimumCapacity: tagCount)
            for _ in 0..<tagCount {
                let key = try tags.varint()
                let value = try tags.varint()
                guard key < stringCount, value < stringCount else {
                    throw FormatError(description: "span block string \(max(key, value)) out of range")
                }
                stringSlices[Int(key)].withUnsafeBytes { k in
                    stringSlices[Int(value)].withUnsafeBytes { v in spanTags.appendNew(key: k, value: v) }
                }
            }
            spans.append(
                Span(
                    traceID: trace, spanID: spanID, parentID: parent, kind: kind, name: try string(nameIndex),
                    startMicros: start, durationMicros: duration, localEndpoint: try local.map(endpoint),
                    remoteEndpoint: try remote.map(endpoint), annotations: spanAnnotations, tags: spanTags,
                    isError: bits & Flag.error != 0, shared: bits & Flag.shared != 0, debug: bits & Flag.debug != 0))
        }
        return spans
    }

    /// Spans in block order: by trace, then start, then span id.
    package static func sortedForBlock(_ spans: [Span]) -> [Span] {
        spans.sorted {
            if $0.traceID != $1.traceID { return ($0.traceID.high, $0.traceID.low) < ($1.traceID.high, $1.traceID.low) }
            if $0.startMicros != $1.startMicros { return $0.startMicros < $1.startMicros }
            return $0.spanID.value < $1.spanID.value
        }
    }

    private enum Flag {
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

    mutating func index(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        // Never nil: no limit.
        let (index, isNew) = indices.index(bytes)!
        if isNew {
            encoded.bytes(bytes)
            count += 1
        }
        return UInt64(index)
    }

    mutating func index(_ string: String) -> UInt64 {
        var string = string
        return string.withUTF8 { index(UnsafeRawBufferPointer($0)) }
    }

    /// 0 for nil, else the string's index plus one.
    mutating func optionalIndex(_ string: String?) -> UInt64 {
        string.map { index($0) + 1 } ?? 0
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
        for column in columns {
            body.varint(UInt64(column.out.count))
            body.out.append(contentsOf: column.out)
        }
        var out: [UInt8] = [version]
        var size = ByteWriter()
        size.varint(UInt64(body.out.count))
        out.append(contentsOf: size.out)
        out.append(contentsOf: Zstd.compress(body.out, level: level))
        return out
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
