package import SextantModel

/// Decodes Zipkin v2 JSON (`POST /api/v2/spans`): a JSON array of spans.
///
/// Each span is checked on its own: a bad span is reported in `rejected` and the others are kept;
/// a body that is not JSON, or not an array, is refused whole. Envoy proxy spans also become
/// `CallReport`s (see `EnvoySpanMapper`).
/// Model: https://zipkin.io/zipkin-api/#/default/post_spans
package struct ZipkinV2Decoder: Sendable {
    package init() {}

    package func decode(json: [UInt8]) throws(DecodeError) -> IngestBatch {
        let outcome = json.withUnsafeBytes { decode(bytes: $0) }
        return try outcome.get()
    }

    /// Decodes a body that the caller holds in memory.
    package func decode(bytes: UnsafeRawBufferPointer) -> Result<IngestBatch, DecodeError> {
        var reader = JSONReader(bytes)
        reader.skipSpace()
        if reader.isAtEnd { return .success(IngestBatch()) }
        let context = DecodeContext()
        var batch = IngestBatch()
        do throws(JSONReader.SyntaxError) {
            guard try reader.peekKind() == .array else {
                return .failure(DecodeError(.malformed, "body is not a JSON array of Zipkin v2 spans"))
            }
            var more = try reader.openArray()
            var index = 0
            var scratch = TagScratch()
            // Room for the spans an Envoy body of this size holds (about a kilobyte each), so the
            // arrays are not copied as they grow.
            let expected = min(bytes.count / 1024 + 1, 4096)
            batch.spans.reserveCapacity(expected)
            batch.requests.reserveCapacity(expected)
            while more {
                var span = SpanReader(context: context)
                try span.read(&reader, scratch: &scratch)
                if let problem = span.problem {
                    batch.rejected.append(RecordError(location: "span[\(index)]", message: problem))
                } else {
                    do throws(RecordError) {
                        let envoy = span.envoy
                        let decoded = try span.span(index: index)
                        if let request = EnvoySpanMapper.request(from: decoded, envoy: envoy, context: context) {
                            batch.requests.append(request)
                        }
                        batch.spans.append(consume decoded)
                    } catch {
                        batch.rejected.append(error)
                    }
                }
                index += 1
                more = try reader.nextElement()
            }
            try reader.finish()
        } catch {
            return .failure(
                DecodeError(.malformed, "body is not a JSON array of Zipkin v2 spans: invalid JSON: \(error)"))
        }
        return .success(batch)
    }
}

/// Reads one element of the array, keeping each field's bytes and the first thing wrong with it.
/// Not copyable: its fields move into the `Span` it makes.
private struct SpanReader: ~Copyable {
    let context: DecodeContext
    var problem: String?

    var traceID = IDField<TraceID>.absent
    var spanID = IDField<SpanID>.absent
    var parentID = IDField<SpanID>.absent
    var kindText: String?
    var name = ""
    var timestamp: Int64?
    var duration: Int64?
    var localEndpoint: Span.Endpoint?
    var remoteEndpoint: Span.Endpoint?
    var annotations: [Span.Annotation] = []
    var annotationProblem = false
    var tags = Attributes()
    var envoy = EnvoySpanTags()
    var debug = false
    var shared = false

    init(context: DecodeContext) {
        self.context = context
    }

    mutating func note(_ message: String) {
        if problem == nil { problem = message }
    }

    /// - Parameter scratch: for the span's tags (kept from span to span).
    mutating func read(_ r: inout JSONReader, scratch: inout TagScratch) throws(JSONReader.SyntaxError) {
        guard try r.peekKind() == .object else {
            note("a span must be a JSON object")
            try r.skipValue()
            return
        }
        var more = try r.openObject()
        while more {
            let key = try r.key()
            if r.equals(key, "traceId") {
                traceID = try id(&r, "traceId") { TraceID(hexBytes: $0) }
            } else if r.equals(key, "id") {
                spanID = try id(&r, "id") { SpanID(hexBytes: $0) }
            } else if r.equals(key, "parentId") {
                parentID = try id(&r, "parentId") { SpanID(hexBytes: $0) }
            } else if r.equals(key, "kind") {
                kindText = try string(&r, "kind")
            } else if r.equals(key, "name") {
                if let raw = try rawString(&r, "name") {
                    if let lower = context.lowercasedASCII(r.slice(raw)), !raw.escaped {
                        name = lower
                    } else if let text = text(r, raw) {
                        name = text.lowercased()
                    }
                }
            } else if r.equals(key, "timestamp") {
                timestamp = try integer(&r, "timestamp")
            } else if r.equals(key, "duration") {
                duration = try integer(&r, "duration")
            } else if r.equals(key, "localEndpoint") {
                localEndpoint = try endpoint(&r, "localEndpoint")
            } else if r.equals(key, "remoteEndpoint") {
                remoteEndpoint = try endpoint(&r, "remoteEndpoint")
            } else if r.equals(key, "annotations") {
                try readAnnotations(&r)
            } else if r.equals(key, "tags") {
                try readTags(&r, scratch: &scratch)
            } else if r.equals(key, "debug") {
                debug = try bool(&r, "debug") ?? false
            } else if r.equals(key, "shared") {
                shared = try bool(&r, "shared") ?? false
            } else {
                try r.skipValue()
            }
            more = try r.nextMember()
        }
    }

    // MARK: - Fields

    /// A string field, or nil for null; a value of another kind is noted and skipped.
    private mutating func rawString(_ r: inout JSONReader, _ field: @autoclosure () -> String) throws(JSONReader.SyntaxError)
        -> JSONReader.RawString?
    {
        switch try r.peekKind() {
        case .string: return try r.rawString()
        case .null:
            try r.null()
            return nil
        default:
            note("'\(field())' should be a string")
            try r.skipValue()
            return nil
        }
    }

    private mutating func text(_ r: JSONReader, _ raw: JSONReader.RawString) -> String? {
        guard let text = r.text(raw) else {
            note("invalid JSON: a string is not valid UTF-8")
            return nil
        }
        return text
    }

    private mutating func string(_ r: inout JSONReader, _ field: @autoclosure () -> String) throws(JSONReader.SyntaxError) -> String? {
        guard let raw = try rawString(&r, field()) else { return nil }
        if !raw.escaped, raw.ascii { return context.strings.string(r.slice(raw)) }
        return text(r, raw)
    }

    /// An id field, parsed straight from its bytes; its text is made only when it is not an id.
    private mutating func id<ID>(
        _ r: inout JSONReader, _ field: @autoclosure () -> String, parse: (UnsafeRawBufferPointer) -> ID?
    ) throws(JSONReader.SyntaxError) -> IDField<ID> {
        guard let raw = try rawString(&r, field()) else { return .absent }
        if !raw.escaped, let id = parse(r.slice(raw)) { return .valid(id) }
        guard let value = text(r, raw) else { return .absent }
        if let id = Array(value.utf8).withUnsafeBytes({ parse($0) }) { return .valid(id) }
        return .invalid(value)
    }

    private mutating func integer(_ r: inout JSONReader, _ field: @autoclosure () -> String) throws(JSONReader.SyntaxError) -> Int64? {
        switch try r.peekKind() {
        case .number:
            let number = try r.rawNumber()
            if let value = r.integer(number) { return value }
            let double = r.double(number)
            if double.rounded() == double, let value = Int64(exactly: double) { return value }
            note("'\(field())' should be an integer, got \(r.numberText(number).prefix(40))")
            return nil
        case .null:
            try r.null()
            return nil
        default:
            note("'\(field())' should be an integer number of microseconds")
            try r.skipValue()
            return nil
        }
    }

    private mutating func bool(_ r: inout JSONReader, _ field: @autoclosure () -> String) throws(JSONReader.SyntaxError) -> Bool? {
        switch try r.peekKind() {
        case .bool: return try r.bool()
        case .null:
            try r.null()
            return nil
        default:
            note("'\(field())' should be true or false")
            try r.skipValue()
            return nil
        }
    }

    private mutating func endpoint(_ r: inout JSONReader, _ field: @autoclosure () -> String) throws(JSONReader.SyntaxError)
        -> Span.Endpoint?
    {
        switch try r.peekKind() {
        case .object: break
        case .null:
            try r.null()
            return nil
        default:
            note("'\(field())' should be an object")
            try r.skipValue()
            return nil
        }
        var endpoint = Span.Endpoint()
        var more = try r.openObject()
        while more {
            let key = try r.key()
            if r.equals(key, "serviceName") {
                if let raw = try rawString(&r, "\(field()).serviceName"), raw.count > 0 {
                    if !raw.escaped, let lower = context.lowercasedASCII(r.slice(raw)) {
                        endpoint.serviceName = lower
                    } else {
                        endpoint.serviceName = text(r, raw)?.lowercased()
                    }
                }
            } else if r.equals(key, "ipv4") {
                endpoint.ipv4 = try string(&r, "\(field()).ipv4")
            } else if r.equals(key, "ipv6") {
                endpoint.ipv6 = try string(&r, "\(field()).ipv6")
            } else if r.equals(key, "port") {
                if let port = try integer(&r, "\(field()).port") {
                    guard let fits = Int(exactly: port) else {
                        note("'\(field()).port' is out of range")
                        continue
                    }
                    endpoint.port = fits == 0 ? nil : fits
                }
            } else {
                try r.skipValue()
            }
            more = try r.nextMember()
        }
        return endpoint
    }

    private mutating func readAnnotations(_ r: inout JSONReader) throws(JSONReader.SyntaxError) {
        switch try r.peekKind() {
        case .array: break
        case .null: return try r.null()
        default:
            note("'annotations' should be an array")
            return try r.skipValue()
        }
        var more = try r.openArray()
        while more {
            if try r.peekKind() == .object {
                var timestamp: Int64?
                var value: String?
                var members = try r.openObject()
                while members {
                    let key = try r.key()
                    if r.equals(key, "timestamp") {
                        timestamp = try integer(&r, "annotations.timestamp")
                    } else if r.equals(key, "value") {
                        value = try string(&r, "annotations.value")
                    } else {
                        try r.skipValue()
                    }
                    members = try r.nextMember()
                }
                if let timestamp, let value {
                    annotations.append(Span.Annotation(timestampMicros: timestamp, value: value))
                } else {
                    annotationProblem = true
                }
            } else {
                note("each annotation should be an object")
                try r.skipValue()
            }
            more = try r.nextElement()
        }
    }

    /// Reads the tags: those whose key and value are plain ASCII strings (all of Envoy's) are
    /// noted by where they lie and copied together at the end; any other tag, or a key seen
    /// before, takes the slower path that makes its text.
    private mutating func readTags(_ r: inout JSONReader, scratch: inout TagScratch) throws(JSONReader.SyntaxError) {
        switch try r.peekKind() {
        case .object: break
        case .null: return try r.null()
        default:
            note("'tags' should be an object")
            return try r.skipValue()
        }
        // A repeated `tags` member replaces the earlier one, Envoy's tags included.
        tags = Attributes()
        envoy = EnvoySpanTags()
        scratch.keys.removeAll()
        scratch.pending.removeAll(keepingCapacity: true)
        var more = try r.openObject()
        while more {
            let rawKey = try r.key()
            let plainKey = !rawKey.escaped && rawKey.ascii
            // A value's text when it is not the body's bytes as they stand.
            var made: String?
            var raw: JSONReader.RawString?
            switch try r.peekKind() {
            case .string:
                let string = try r.rawString()
                if !string.escaped, string.ascii {
                    raw = string
                } else if let text = text(r, string) {
                    made = text
                }
            case .number:
                let number = try r.rawNumber()
                made = Self.numberText(r, number)
            case .bool:
                made = try r.bool() ? "true" : "false"
            case .null, .object, .array:
                try r.skipValue()
                let shown = r.text(rawKey).map { String($0.prefix(64)) } ?? "?"
                note("tag '\(shown)' must be a string")
            }
            if let raw, plainKey, scratch.keys.insert(r.slice(rawKey)) {
                _ = envoy.take(key: r.slice(rawKey), position: tags.count + scratch.pending.count)
                scratch.pending.append(
                    Attributes.SourceRanges(key: rawKey.start..<rawKey.end, value: raw.start..<raw.end))
            } else if raw != nil || made != nil {
                flush(r, &scratch)
                if plainKey {
                    let key = r.slice(rawKey)
                    scratch.keys.insertAlways(key)
                    if let raw {
                        set(key: key, value: r.slice(raw))
                    } else if var made {
                        made.withUTF8 { set(key: key, value: UnsafeRawBufferPointer($0)) }
                    }
                } else if var key = text(r, rawKey) {
                    key.withUTF8 { keyBytes in
                        scratch.keys.insertAlways(UnsafeRawBufferPointer(keyBytes))
                        if let raw {
                            set(key: UnsafeRawBufferPointer(keyBytes), value: r.slice(raw))
                        } else if var made {
                            made.withUTF8 { set(key: UnsafeRawBufferPointer(keyBytes), value: UnsafeRawBufferPointer($0)) }
                        }
                    }
                }
            }
            more = try r.nextMember()
        }
        flush(r, &scratch)
    }

    /// Moves the tags noted by position into `tags`.
    private mutating func flush(_ r: JSONReader, _ scratch: inout TagScratch) {
        guard !scratch.pending.isEmpty else { return }
        if tags.isEmpty {
            tags = scratch.pending.withUnsafeBufferPointer { Attributes(copying: r.bytes, ranges: $0) }
        } else {
            for p in scratch.pending {
                tags.appendNew(
                    key: UnsafeRawBufferPointer(rebasing: r.bytes[Int(p.keyStart)..<Int(p.keyEnd)]),
                    value: UnsafeRawBufferPointer(rebasing: r.bytes[Int(p.valueStart)..<Int(p.valueEnd)]))
            }
        }
        scratch.pending.removeAll(keepingCapacity: true)
    }

    /// Keeps one tag; a key already there has its value replaced.
    private mutating func set(key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) {
        _ = envoy.take(key: key, position: tags.set(key: key, value: value))
    }

    /// A number as tag text, the way Zipkin's own JSON readers print it.
    private static func numberText(_ r: JSONReader, _ number: Range<Int>) -> String {
        if let exact = r.integer(number), exact.magnitude < 1_000_000_000_000_000 { return String(exact) }
        let d = r.double(number)
        if d == d.rounded(), abs(d) < 1e15 { return String(Int64(d)) }
        return String(d)
    }

    // MARK: - The span

    /// The span, its fields moved out of the reader.
    consuming func span(index: Int) throws(RecordError) -> Span {
        func fail(_ message: String, _ reason: RecordError.Reason = .invalid) -> RecordError {
            RecordError(location: "span[\(index)]", message: message, reason: reason)
        }
        let trace: TraceID
        switch traceID {
        case .absent: throw fail("missing 'traceId'")
        case .invalid(let text): throw fail("'traceId' must be 16 or 32 hex characters, got '\(text.prefix(64))'")
        case .valid(let value): trace = value
        }
        let id: SpanID
        switch spanID {
        case .absent: throw fail("missing 'id'")
        case .invalid(let text): throw fail("'id' must be 16 hex characters, got '\(text.prefix(64))'")
        case .valid(let value): id = value
        }
        var parent: SpanID?
        switch parentID {
        case .absent, .invalid(""): parent = nil
        case .invalid(let text): throw fail("'parentId' must be 16 hex characters, got '\(text.prefix(64))'")
        case .valid(let value): parent = value
        }
        let spanKind = try resolvedKind { fail($0) }
        if annotationProblem { throw fail("each annotation needs 'timestamp' and 'value'") }
        guard let start = timestamp ?? annotations.map(\.timestampMicros).min() else {
            throw fail("missing 'timestamp'")
        }
        guard start > 0 else { throw fail("'timestamp' must be positive epoch microseconds") }
        let dur = duration ?? 0
        guard dur >= 0 else {
            throw fail("'duration' must not be negative", .negativeDuration)
        }
        return Span(
            traceID: trace,
            spanID: id,
            parentID: parent == id ? nil : parent,
            kind: spanKind,
            name: name,
            startMicros: start,
            durationMicros: dur,
            localEndpoint: localEndpoint,
            remoteEndpoint: remoteEndpoint,
            annotations: annotations,
            tags: tags,
            isError: envoy.has(.error),
            shared: shared,
            debug: debug
        )
    }

    private func resolvedKind(_ fail: (String) -> RecordError) throws(RecordError) -> Span.Kind {
        guard let kindText else { return .unspecified }
        switch kindText.uppercased() {
        case "CLIENT": return .client
        case "SERVER": return .server
        case "PRODUCER": return .producer
        case "CONSUMER": return .consumer
        case let other: throw fail("'kind' must be CLIENT, SERVER, PRODUCER or CONSUMER, got '\(other.prefix(32))'")
        }
    }
}

/// A span's id field as read: absent (or null), an id, or text that is not one.
private enum IDField<ID> {
    case absent
    case valid(ID)
    case invalid(String)
}

/// What reading one span's tags needs, kept from span to span so that it is allocated once.
struct TagScratch {
    var keys = KeySet()
    var pending: [Attributes.SourceRanges] = []
}
