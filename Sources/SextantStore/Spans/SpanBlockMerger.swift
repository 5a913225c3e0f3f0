import SextantModel

/// Merges span blocks into one without making their spans: each block's spans are read as the
/// block stores them (`SpanBlock.Reader`), their strings re-indexed into one dictionary, and the
/// merged block is written from those indices (`SpanBlock.Columns`). The result is what decoding
/// every span, assembling them (`SextantDatabase.assembled`) and building a `PreparedSpanBlock`
/// gives, byte for byte, in a fraction of the memory: a span costs about a hundred bytes and four
/// per tag string instead of its `Span` with its tags' bytes.
struct SpanBlockMerger {
    /// A span with its strings as indices into `strings` (endpoint strings plus one, 0 for none),
    /// and where its annotations and tags lie in `annotations` and `tags` (counted in tags).
    private struct Merged {
        var raw: SpanBlock.RawSpan
        var annotationStart: Int32
        var annotationCount: Int32
        var tagStart: Int32
        var tagCount: Int32
    }

    private var strings = ByteKeyedIndex(limit: .max)
    private var bytes: [UInt8] = []
    private var ranges: [Range<Int>] = []
    private var spans: [Merged] = []
    private var annotations: [(offset: Int64, value: UInt32)] = []
    /// Key and value of each tag, one after the other (tag `i` at `2 i` and `2 i + 1`).
    private var tags: [UInt32] = []

    private mutating func intern(_ string: UnsafeRawBufferPointer) -> UInt64 {
        // Never nil: no limit.
        let (index, isNew) = strings.index(string)!
        if isNew {
            let start = bytes.count
            bytes.append(contentsOf: string)
            ranges.append(start..<bytes.count)
        }
        return UInt64(index)
    }

    /// Adds the spans of one stored block (each part of a group).
    mutating func add(_ data: [UInt8]) throws(SpanBlock.FormatError) {
        for part in try SpanBlock.parts(of: data) { try addPart(part) }
    }

    private mutating func addPart(_ data: [UInt8]) throws(SpanBlock.FormatError) {
        var reader = try SpanBlock.Reader(data)
        var global: [UInt64] = []
        global.reserveCapacity(reader.strings.count)
        for string in reader.strings { global.append(string.withUnsafeBytes { intern($0) }) }
        func map(_ index: UInt64) throws(SpanBlock.FormatError) -> UInt64 {
            guard index < global.count else { throw SpanBlock.FormatError(description: "span block string \(index) out of range") }
            return global[Int(index)]
        }
        func map(_ endpoint: SpanBlock.RawSpan.Endpoint) throws(SpanBlock.FormatError) -> SpanBlock.RawSpan.Endpoint {
            func optional(_ index: UInt64) throws(SpanBlock.FormatError) -> UInt64 { index == 0 ? 0 : try map(index - 1) + 1 }
            return .init(
                service: try optional(endpoint.service), ipv4: try optional(endpoint.ipv4), ipv6: try optional(endpoint.ipv6),
                port: endpoint.port)
        }
        while var raw = try reader.next() {
            raw.name = try map(raw.name)
            raw.local = try raw.local.map(map)
            raw.remote = try raw.remote.map(map)
            let annotationStart = annotations.count
            try reader.annotations { Self.reserve(&annotations, more: $0) } each: { offset, value throws(SpanBlock.FormatError) in
                annotations.append((offset, UInt32(try map(value))))
            }
            let tagStart = tags.count / 2
            try reader.tags { Self.reserve(&tags, more: 2 * $0) } each: { key, value throws(SpanBlock.FormatError) in
                tags.append(UInt32(try map(key)))
                tags.append(UInt32(try map(value)))
            }
            spans.append(
                Merged(
                    raw: raw, annotationStart: Int32(annotationStart), annotationCount: Int32(annotations.count - annotationStart),
                    tagStart: Int32(tagStart), tagCount: Int32(tags.count / 2 - tagStart)))
        }
    }

    /// Makes room for `more` elements, doubling the capacity when it grows: `reserveCapacity` of
    /// just what one span needs would copy the whole array for every span (quadratic in the block).
    private static func reserve<T>(_ array: inout [T], more: Int) {
        let needed = array.count + more
        if needed > array.capacity { array.reserveCapacity(max(needed, 2 * array.capacity)) }
    }

    /// The block of every span added, each once (as `SextantDatabase.assembled` keeps them), in
    /// block order; nil when there are none.
    mutating func prepared() -> PreparedSpanBlock? {
        guard !spans.isEmpty else { return nil }
        let unknown = "unknown".utf8.withContiguousStorageIfAvailable { intern(UnsafeRawBufferPointer($0)) }!
        let spans = self.spans

        // As `assembled`: by start, then span id; a span sent twice (same id, kind, service) once.
        var order = Array(spans.indices)
        order.sort { (spans[$0].raw.start, spans[$0].raw.id) < (spans[$1].raw.start, spans[$1].raw.id) }
        struct Identity: Hashable {
            var id: UInt64
            var kind: UInt8
            var service: UInt64
        }
        func service(_ raw: SpanBlock.RawSpan) -> UInt64 {
            guard let local = raw.local, local.service != 0 else { return unknown }
            return local.service - 1
        }
        var seen = Set<Identity>()
        order.removeAll { !seen.insert(Identity(id: spans[$0].raw.id, kind: spans[$0].raw.kind, service: service(spans[$0].raw))).inserted }
        // As `SpanBlock.sortedForBlock`: by trace, then start, then span id.
        order.sort {
            let a = spans[$0].raw
            let b = spans[$1].raw
            if a.trace != b.trace { return (a.trace.high, a.trace.low) < (b.trace.high, b.trace.low) }
            if a.start != b.start { return a.start < b.start }
            return a.id < b.id
        }

        var traces: [TraceID] = []
        var minStart = Int64.max
        var maxStart = Int64.min
        var summaries: [NameIDs: NameSummary] = [:]
        for i in order {
            let raw = spans[i].raw
            if traces.last != raw.trace { traces.append(raw.trace) }
            minStart = min(minStart, raw.start)
            maxStart = max(maxStart, raw.start)
            let key = NameIDs(service: service(raw), name: raw.name, remoteService: raw.remote?.service ?? 0)
            summaries[key, default: NameSummary(start: raw.start)].add(
                start: raw.start, duration: raw.duration, isError: raw.bits & SpanBlock.Flag.error != 0)
        }

        let data = bytes.withUnsafeBytes { all in
            func string(_ index: UInt64) -> UnsafeRawBufferPointer {
                UnsafeRawBufferPointer(rebasing: all[ranges[Int(index)]])
            }
            func optional(_ index: UInt64) -> UnsafeRawBufferPointer? { index == 0 ? nil : string(index - 1) }
            var columns = SpanBlock.Columns(base: minStart)
            for i in order {
                let span = spans[i]
                let raw = span.raw
                columns.span(trace: raw.trace, id: raw.id, parent: raw.parent, bits: raw.bits, kind: raw.kind, start: raw.start, duration: raw.duration)
                columns.name(string(raw.name))
                for endpoint in [raw.local, raw.remote] {
                    guard let endpoint else { continue }
                    columns.endpointString(optional(endpoint.service))
                    columns.endpointString(optional(endpoint.ipv4))
                    columns.endpointString(optional(endpoint.ipv6))
                    columns.endpointPort(endpoint.port)
                }
                columns.count(annotations: Int(span.annotationCount))
                for a in Int(span.annotationStart)..<Int(span.annotationStart + span.annotationCount) {
                    columns.annotation(offset: annotations[a].offset, value: string(UInt64(annotations[a].value)))
                }
                columns.count(tags: Int(span.tagCount))
                for t in Int(span.tagStart)..<Int(span.tagStart + span.tagCount) {
                    columns.tag(key: string(UInt64(tags[2 * t])), value: string(UInt64(tags[2 * t + 1])))
                }
            }
            return columns.sealed(count: order.count)
        }

        var names: [NameKey: NameSummary] = [:]
        func text(_ index: UInt64) -> String { String(decoding: bytes[ranges[Int(index)]], as: UTF8.self) }
        for (key, summary) in summaries {
            let name = NameKey(
                service: text(key.service), name: text(key.name),
                remoteService: key.remoteService == 0 ? nil : text(key.remoteService - 1))
            names[name] = summary
        }
        return PreparedSpanBlock(
            count: order.count, minStart: minStart, maxStart: maxStart, traces: traces, data: data,
            names: names)
    }

    /// A `NameKey` as dictionary indices (the remote service plus one, 0 for none).
    private struct NameIDs: Hashable {
        var service: UInt64
        var name: UInt64
        var remoteService: UInt64
    }
}
