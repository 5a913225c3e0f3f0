package import SextantModel

/// Turns an OTLP `ExportTraceServiceRequest` (protobuf bytes) into spans, and the calls the spans
/// observed: Envoy proxy spans as Envoy reports them (`EnvoySpanMapper`), application (SDK) spans
/// as the OpenTelemetry servicegraph connector reads them (`SDKSpanMapper`).
///
/// Reads the wire format itself (`ProtobufReader`): a span's attributes go straight into its
/// `Attributes` copied from the body's bytes, its ids into `TraceID`/`SpanID`, and the Envoy
/// tags are picked out on the way; each resource's attributes are read once for all its spans.
/// Spec: https://opentelemetry.io/docs/specs/otlp/
package struct OTLPTraceDecoder: Sendable {
    package init() {}

    /// The protobuf message name, for errors.
    static let messageName = "opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest"

    package func decode(protobuf body: [UInt8]) throws(DecodeError) -> IngestBatch {
        var result: Result<IngestBatch, DecodeError> = .success(IngestBatch())
        body.withUnsafeBytes { bytes in
            do throws(DecodeError) {
                result = .success(try decode(protobuf: bytes))
            } catch {
                result = .failure(error)
            }
        }
        return try result.get()
    }

    /// - Throws: `DecodeError.malformed` when the bytes are not a protobuf message.
    package func decode(protobuf body: UnsafeRawBufferPointer) throws(DecodeError) -> IngestBatch {
        let context = DecodeContext()
        var batch = IngestBatch()
        var r = ProtobufReader(body)
        do throws(ProtobufReader.WireError) {
            var resourceIndex = 0
            while let field = try r.next() {
                guard field.number == 1, field.wireType == .lengthDelimited else {
                    try r.skip(field)
                    continue
                }
                let resourceSpans = try r.message()
                try Self.resourceSpans(resourceSpans, index: resourceIndex, context: context, into: &batch)
                resourceIndex += 1
            }
        } catch {
            throw DecodeError(.malformed, "body is not a protobuf \(Self.messageName): \(error)")
        }
        return batch
    }

    // MARK: - Resources and scopes

    /// One `ResourceSpans`: its resource first (wherever it is in the message), then its spans.
    private static func resourceSpans(
        _ message: ProtobufReader, index r: Int, context: DecodeContext, into batch: inout IngestBatch
    ) throws(ProtobufReader.WireError) {
        var keys = KeySet()
        var attributes: [String: String] = [:]
        var pass = message
        while let field = try pass.next() {
            guard field.number == 1, field.wireType == .lengthDelimited else {
                try pass.skip(field)
                continue
            }
            // A resource that occurs twice is merged: its attribute lists are concatenated.
            var resource = try pass.message()
            while let inner = try resource.next() {
                guard inner.number == 1, inner.wireType == .lengthDelimited else {
                    try resource.skip(inner)
                    continue
                }
                var pair = try resource.message()
                let (keyBytes, value) = try OTLPAnyValue.keyValue(&pair)
                let key = context.strings.string(keyBytes)
                // The first value of a repeated key wins, as in `textMap`.
                if ResourceIdentity.keys.contains(key), attributes[key] == nil {
                    attributes[key] = value.text(strings: context.strings)
                }
            }
        }
        var resource = Resource(identity: ResourceIdentity(attributes: attributes))
        var scopeIndex = 0
        pass = message
        while let field = try pass.next() {
            guard field.number == 2, field.wireType == .lengthDelimited else {
                try pass.skip(field)
                continue
            }
            var scope = try pass.message()
            var spanIndex = 0
            while let inner = try scope.next() {
                guard inner.number == 2, inner.wireType == .lengthDelimited else {
                    try scope.skip(inner)
                    continue
                }
                var reader = try scope.message()
                var span = SpanFields()
                try span.read(&reader, context: context, keys: &keys)
                do throws(RecordError) {
                    let made = try span.span(service: resource.identity.service) {
                        "resource_spans[\(r)].scope_spans[\(scopeIndex)].spans[\(spanIndex)]"
                    }
                    batch.spans.append(made)
                    if let call = EnvoySpanMapper.request(
                        from: made, envoy: span.envoy, nodeID: resource.identity.attributes["service.instance.id"],
                        context: context)
                        ?? SDKSpanMapper.request(from: made, proxy: resource.workload)
                    {
                        batch.requests.append(call)
                    }
                } catch {
                    batch.rejected.append(error)
                }
                spanIndex += 1
            }
            scopeIndex += 1
        }
    }

    /// A resource's identity, and its workload once an SDK span asks for it.
    private struct Resource {
        let identity: ResourceIdentity
        private var cachedWorkload: WorkloadIdentity?

        init(identity: ResourceIdentity) {
            self.identity = identity
        }

        var workload: WorkloadIdentity {
            mutating get {
                if let cachedWorkload { return cachedWorkload }
                let made = identity.workload
                cachedWorkload = made
                return made
            }
        }
    }
}

// MARK: - Spans

/// The fields of one OTLP `Span` as read from the wire (later occurrences of a field win, as
/// protobuf merges them), checked and turned into a `Span` once the whole message is read.
private struct SpanFields {
    var traceID = UnsafeRawBufferPointer(start: nil, count: 0)
    var spanID = UnsafeRawBufferPointer(start: nil, count: 0)
    var parentSpanID = UnsafeRawBufferPointer(start: nil, count: 0)
    var name = ""
    var kind: Int32 = 0
    var start: UInt64 = 0
    var end: UInt64 = 0
    var tags = Attributes(minimumCapacity: 24, byteCount: 1024)
    var envoy = EnvoySpanTags()
    var annotations: [Span.Annotation] = []
    var statusCode: Int32 = 0
    var statusMessage = ""
    /// Whether an attribute's key starts `zipkin.` (`OTLPExportEncoder.ZipkinKey`).
    var zipkinFields = false

    /// - Parameter keys: scratch for the keys of the span's attributes (kept from span to span).
    mutating func read(_ r: inout ProtobufReader, context: DecodeContext, keys: inout KeySet)
        throws(ProtobufReader.WireError)
    {
        keys.removeAll()
        while let field = try r.next() {
            switch (field.number, field.wireType) {
            case (1, .lengthDelimited): traceID = try r.bytes()
            case (2, .lengthDelimited): spanID = try r.bytes()
            case (4, .lengthDelimited): parentSpanID = try r.bytes()
            case (5, .lengthDelimited): name = context.strings.string(try r.string())
            case (6, .varint): kind = try r.int32()
            case (7, .fixed64): start = try r.fixed64()
            case (8, .fixed64): end = try r.fixed64()
            case (9, .lengthDelimited):
                var pair = try r.message()
                try attribute(&pair, context: context, keys: &keys)
            case (11, .lengthDelimited):
                var event = try r.message()
                var time: UInt64 = 0
                var eventName = ""
                while let inner = try event.next() {
                    switch (inner.number, inner.wireType) {
                    case (1, .fixed64): time = try event.fixed64()
                    case (2, .lengthDelimited): eventName = context.strings.string(try event.string())
                    default: try event.skip(inner)
                    }
                }
                annotations.append(Span.Annotation(timestampMicros: Int64(time / 1000), value: eventName))
            case (15, .lengthDelimited):
                var status = try r.message()
                while let inner = try status.next() {
                    switch (inner.number, inner.wireType) {
                    case (2, .lengthDelimited): statusMessage = String(decoding: try status.string(), as: UTF8.self)
                    case (3, .varint): statusCode = try status.int32()
                    default: try status.skip(inner)
                    }
                }
            default: try r.skip(field)
            }
        }
    }

    /// One `KeyValue` of the span's attributes: the first value of a key wins, as in `textMap`.
    private mutating func attribute(_ r: inout ProtobufReader, context: DecodeContext, keys: inout KeySet)
        throws(ProtobufReader.WireError)
    {
        let (keyBytes, value) = try OTLPAnyValue.keyValue(&r)
        // A repeated key, or a hash collision with another key: only a key not seen yet is kept.
        guard keys.insert(keyBytes) || tags.index(ofKey: keyBytes) == nil else { return }
        _ = envoy.take(key: keyBytes, position: tags.count)
        if keyBytes.count > 7, keyBytes[0] == UInt8(ascii: "z"), keyBytes.starts(with: "zipkin.".utf8) {
            zipkinFields = true
        }
        value.withText { tags.appendNew(key: keyBytes, value: $0) }
    }

    /// Zipkin's fields carried as attributes by a Sextant that forwarded the span
    /// (`OTLPExportEncoder`), taken back out of the tags. The Envoy tags' positions are found again
    /// in what is left.
    mutating func liftZipkinFields(local: inout Span.Endpoint, remote: inout Span.Endpoint?, shared: inout Bool, debug: inout Bool) {
        typealias Key = OTLPExportEncoder.ZipkinKey
        func take(_ key: String) -> String? {
            guard let value = tags[key] else { return nil }
            tags[key] = nil
            return value
        }
        local.ipv4 = take(Key.localIPv4)
        local.ipv6 = take(Key.localIPv6)
        local.port = take(Key.localPort).flatMap { Int($0) }
        let remoteService = take(Key.remoteService)
        let remoteIPv4 = take(Key.remoteIPv4)
        let remoteIPv6 = take(Key.remoteIPv6)
        let remotePort = take(Key.remotePort).flatMap { Int($0) }
        if remoteService != nil || remoteIPv4 != nil || remoteIPv6 != nil || remotePort != nil {
            remote = Span.Endpoint(serviceName: remoteService, ipv4: remoteIPv4, ipv6: remoteIPv6, port: remotePort)
        }
        shared = take(Key.shared) == "true"
        debug = take(Key.debug) == "true"
        envoy = EnvoySpanTags()
        for i in tags.indices {
            tags.withPair(at: i) { key, _ in _ = envoy.take(key: key, position: i) }
        }
    }

    /// The span, checked field by field (ids, times, kind, status).
    mutating func span(service: String, location: () -> String) throws(RecordError) -> Span {
        func fail(_ message: String) -> RecordError { RecordError(location: location(), message: message) }
        guard traceID.count == 16, traceID.contains(where: { $0 != 0 }) else {
            throw fail("trace_id must be 16 bytes, not all zero (got \(traceID.count))")
        }
        guard spanID.count == 8, spanID.contains(where: { $0 != 0 }) else {
            throw fail("span_id must be 8 bytes, not all zero (got \(spanID.count))")
        }
        guard parentSpanID.isEmpty || parentSpanID.count == 8 else {
            throw fail("parent_span_id must be empty or 8 bytes (got \(parentSpanID.count))")
        }
        guard start > 0 else { throw fail("start_time_unix_nano is missing") }
        guard end >= start else {
            throw RecordError(
                location: location(), message: "end_time_unix_nano is before start_time_unix_nano",
                reason: .negativeDuration)
        }
        let spanKind: Span.Kind
        switch kind {
        case 2: spanKind = .server
        case 3: spanKind = .client
        case 4: spanKind = .producer
        case 5: spanKind = .consumer
        default: spanKind = .unspecified
        }
        var local = Span.Endpoint(serviceName: service)
        var remote = SDKSpanMapper.peer(of: tags).map { Span.Endpoint(serviceName: $0) }
        var shared = false
        var debug = false
        if zipkinFields { liftZipkinFields(local: &local, remote: &remote, shared: &shared, debug: &debug) }
        // OTLP's status is kept as Zipkin shows it; Zipkin's own `error` tag (spans a Sextant
        // forwarded from Zipkin) marks an error too.
        let isError = statusCode == 2 || tags["error"] != nil
        var tags = tags
        if statusCode == 2 {
            tags["otel.status_code"] = "ERROR"
            if !statusMessage.isEmpty { tags["otel.status_description"] = statusMessage }
        }
        return Span(
            traceID: TraceID(high: Self.bigEndian(traceID, at: 0), low: Self.bigEndian(traceID, at: 8)),
            spanID: SpanID(Self.bigEndian(spanID, at: 0)),
            parentID: parentSpanID.isEmpty ? nil : SpanID(Self.bigEndian(parentSpanID, at: 0)),
            kind: spanKind,
            name: name,
            startMicros: Int64(start / 1000),
            durationMicros: Int64((end - start) / 1000),
            localEndpoint: local,
            remoteEndpoint: remote,
            annotations: annotations,
            tags: tags,
            isError: isError,
            shared: shared,
            debug: debug
        )
    }

    private static func bigEndian(_ bytes: UnsafeRawBufferPointer, at offset: Int) -> UInt64 {
        UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }
}
