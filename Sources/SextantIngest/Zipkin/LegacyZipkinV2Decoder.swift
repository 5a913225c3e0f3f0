internal import Foundation
package import SextantModel

/// Decodes Zipkin v2 JSON (`POST /api/v2/spans`): a JSON array of spans.
///
/// Each span is checked on its own: a bad span is reported in `rejected` and the others are kept.
/// Envoy proxy spans also become `Request`s (see `EnvoySpanMapper`).
/// Model: https://zipkin.io/zipkin-api/#/default/post_spans
package struct LegacyZipkinV2Decoder: Sendable {
    package init() {}

    package func decode(json: [UInt8]) throws(DecodeError) -> IngestBatch {
        let data = Data(json)
        if data.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) {
            return IngestBatch()
        }
        let elements: [Failable<LegacyZipkinSpanJSON>]
        do {
            elements = try JSONDecoder().decode([Failable<LegacyZipkinSpanJSON>].self, from: data)
        } catch {
            throw DecodeError(.malformed, "body is not a JSON array of Zipkin v2 spans: \(Self.describe(error))")
        }
        var batch = IngestBatch()
        for (index, element) in elements.enumerated() {
            let location = "span[\(index)]"
            switch element.result {
            case .failure(let error):
                batch.rejected.append(RecordError(location: location, message: Self.describe(error)))
            case .success(let json):
                do throws(RecordError) {
                    let span = try json.span(location: location)
                    batch.spans.append(span)
                    if let request = EnvoySpanMapper.request(from: span) {
                        batch.requests.append(request)
                    }
                } catch {
                    batch.rejected.append(error)
                }
            }
        }
        return batch
    }

    static func describe(_ error: any Error) -> String {
        // Foundation's JSON parser reports bad UTF-8 only through its own (internal) error's name.
        if "\(error)".contains("UTF8") { return "invalid JSON: a string is not valid UTF-8" }
        switch error {
        case DecodingError.typeMismatch(let type, let context):
            return "\(path(context)) should be \(type)"
        case DecodingError.valueNotFound(let type, let context):
            return "\(path(context)) should be \(type), found null"
        case DecodingError.keyNotFound(let key, let context):
            return "missing \(path(context, key))"
        case DecodingError.dataCorrupted(let context):
            let underlying = (context.underlyingError as? NSError)?.userInfo[NSDebugDescriptionErrorKey] as? String
            let detail = underlying ?? context.debugDescription
            return detail.isEmpty ? "invalid JSON" : "invalid JSON: \(detail)"
        default:
            return "\(error)"
        }
    }

    private static func path(_ context: DecodingError.Context, _ key: (any CodingKey)? = nil) -> String {
        let keys = (context.codingPath + (key.map { [$0] } ?? [])).filter { $0.intValue == nil }
        return keys.isEmpty ? "value" : "'" + keys.map(\.stringValue).joined(separator: ".") + "'"
    }
}

/// A Zipkin v2 span as JSON; every field optional so that validation can say what is wrong.
struct LegacyZipkinSpanJSON: Decodable {
    struct Endpoint: Decodable {
        var serviceName: String?
        var ipv4: String?
        var ipv6: String?
        var port: Int?
    }

    struct Annotation: Decodable {
        var timestamp: Int64?
        var value: String?
    }

    var traceId: String?
    var id: String?
    var parentId: String?
    var kind: String?
    var name: String?
    var timestamp: Int64?
    var duration: Int64?
    var localEndpoint: Endpoint?
    var remoteEndpoint: Endpoint?
    var annotations: [Annotation]?
    var tags: [String: JSONScalar]?
    var debug: Bool?
    var shared: Bool?

    func span(location: String) throws(RecordError) -> Span {
        func fail(_ message: String) -> RecordError { RecordError(location: location, message: message) }
        guard let rawTrace = traceId else { throw fail("missing 'traceId'") }
        guard let trace = HexID.normalize(rawTrace, widths: [16, 32]) else {
            throw fail("'traceId' must be 16 or 32 hex characters, got '\(rawTrace.prefix(64))'")
        }
        guard let rawID = id else { throw fail("missing 'id'") }
        guard let spanID = HexID.normalize(rawID, widths: [16]) else {
            throw fail("'id' must be 16 hex characters, got '\(rawID.prefix(64))'")
        }
        var parent: String?
        if let rawParent = parentId, !rawParent.isEmpty {
            guard let p = HexID.normalize(rawParent, widths: [16]) else {
                throw fail("'parentId' must be 16 hex characters, got '\(rawParent.prefix(64))'")
            }
            parent = p
        }
        let spanKind: Span.Kind
        switch kind?.uppercased() {
        case nil: spanKind = .unspecified
        case "CLIENT": spanKind = .client
        case "SERVER": spanKind = .server
        case "PRODUCER": spanKind = .producer
        case "CONSUMER": spanKind = .consumer
        case let other?: throw fail("'kind' must be CLIENT, SERVER, PRODUCER or CONSUMER, got '\(other.prefix(32))'")
        }
        let annotationList = try (annotations ?? []).map { (a) throws(RecordError) -> Span.Annotation in
            guard let ts = a.timestamp, let value = a.value else {
                throw fail("each annotation needs 'timestamp' and 'value'")
            }
            return Span.Annotation(timestampMicros: ts, value: value)
        }
        guard let start = timestamp ?? annotationList.map(\.timestampMicros).min() else {
            throw fail("missing 'timestamp'")
        }
        guard start > 0 else { throw fail("'timestamp' must be positive epoch microseconds") }
        let dur = duration ?? 0
        guard dur >= 0 else {
            throw RecordError(location: location, message: "'duration' must not be negative", reason: .negativeDuration)
        }
        var tagMap: [String: String] = [:]
        for (key, value) in tags ?? [:] {
            switch value {
            case .string(let s): tagMap[key] = s
            case .number, .bool: tagMap[key] = value.text ?? ""
            case .null, .nested: throw fail("tag '\(key.prefix(64))' must be a string")
            }
        }
        return Span(
            traceID: TraceID(hex: trace)!,
            spanID: SpanID(hex: spanID)!,
            parentID: parent == spanID ? nil : parent.flatMap { SpanID(hex: $0) },
            kind: spanKind,
            name: (name ?? "").lowercased(),
            startMicros: start,
            durationMicros: dur,
            localEndpoint: localEndpoint.map(Self.endpoint),
            remoteEndpoint: remoteEndpoint.map(Self.endpoint),
            annotations: annotationList,
            tags: Attributes(tagMap),
            shared: shared ?? false,
            debug: debug ?? false
        )
    }

    private static func endpoint(_ e: Endpoint) -> Span.Endpoint {
        Span.Endpoint(
            serviceName: e.serviceName.flatMap { $0.isEmpty ? nil : $0.lowercased() },
            ipv4: e.ipv4, ipv6: e.ipv6, port: e.port.flatMap { $0 == 0 ? nil : $0 })
    }
}

