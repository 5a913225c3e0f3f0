package import SextantModel

/// OTLP/JSON differs from protobuf's canonical JSON mapping in one way that matters: trace and
/// span ids are hex strings, not base64. This rewrites them, reading the body byte by byte, so
/// SwiftProtobuf's JSON decoder can read the rest (lowerCamelCase keys, enums as numbers, int64
/// as strings are all standard).
/// Spec: https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding
package enum OTLPJSON {
    package static func protobufJSON(from body: [UInt8]) throws(DecodeError) -> [UInt8] {
        let outcome = body.withUnsafeBytes { bytes -> Result<[UInt8], DecodeError> in
            var reader = JSONReader(bytes)
            var splices: [(range: Range<Int>, base64: [UInt8])] = []
            do throws(JSONReader.SyntaxError) {
                guard try reader.peekKind() == .object else {
                    return .failure(DecodeError(.malformed, "body must be a JSON object"))
                }
                if let problem = try walk(&reader, depth: 0, splices: &splices) { return .failure(problem) }
                try reader.finish()
            } catch {
                return .failure(DecodeError(.malformed, "body is not valid JSON: \(error)"))
            }
            if splices.isEmpty { return .success(body) }
            var out: [UInt8] = []
            out.reserveCapacity(body.count)
            var copied = 0
            for splice in splices {
                out.append(contentsOf: bytes[copied..<splice.range.lowerBound])
                out.append(contentsOf: splice.base64)
                copied = splice.range.upperBound
            }
            out.append(contentsOf: bytes[copied...])
            return .success(out)
        }
        return try outcome.get()
    }

    /// Walks one value, noting where each id's hex text stands and its base64 form.
    private static func walk(
        _ r: inout JSONReader, depth: Int, splices: inout [(range: Range<Int>, base64: [UInt8])]
    ) throws(JSONReader.SyntaxError) -> DecodeError? {
        guard depth < JSONReader.maxDepth else { throw r.fail("nested more than \(JSONReader.maxDepth) levels deep") }
        switch try r.peekKind() {
        case .object:
            var more = try r.openObject()
            while more {
                let key = try r.key()
                if isIDKey(r, key), try r.peekKind() == .string {
                    let value = try r.rawString()
                    guard !value.escaped, let bytes = binary(hex: r.slice(value)) else {
                        let shown = r.text(value).map { String($0.prefix(40)) } ?? "?"
                        let name = r.text(key) ?? "?"
                        return DecodeError(.malformed, "'\(name)' must be a hex string, got '\(shown)'")
                    }
                    splices.append((value.start..<value.end, base64(bytes)))
                } else if isEnumKey(r, key), try r.peekKind() == .number {
                    // Protobuf's JSON mapping allows an enum as its number, which must be an int32.
                    // SwiftProtobuf keeps a wider one as an unrecognised value whose binary size it
                    // then miscounts, so it is refused here.
                    let number = try r.rawNumber()
                    let value = r.double(number)
                    guard value >= Double(Int32.min), value <= Double(Int32.max) else {
                        let name = r.text(key) ?? "?"
                        return DecodeError(.malformed, "'\(name)' must be an enum number within int32, got \(r.numberText(number))")
                    }
                } else if let problem = try walk(&r, depth: depth + 1, splices: &splices) {
                    return problem
                }
                more = try r.nextMember()
            }
        case .array:
            var more = try r.openArray()
            while more {
                if let problem = try walk(&r, depth: depth + 1, splices: &splices) { return problem }
                more = try r.nextElement()
            }
        default:
            try r.skipValue()
        }
        return nil
    }

    private static func isIDKey(_ r: JSONReader, _ key: JSONReader.RawString) -> Bool {
        r.equals(key, "traceId") || r.equals(key, "spanId") || r.equals(key, "parentSpanId")
            || r.equals(key, "trace_id") || r.equals(key, "span_id") || r.equals(key, "parent_span_id")
    }

    /// The enum-typed fields of the OTLP trace, log and metric messages.
    private static func isEnumKey(_ r: JSONReader, _ key: JSONReader.RawString) -> Bool {
        r.equals(key, "kind") || r.equals(key, "code") || r.equals(key, "severityNumber")
            || r.equals(key, "severity_number") || r.equals(key, "aggregationTemporality")
            || r.equals(key, "aggregation_temporality")
    }

    private static func binary(hex: UnsafeRawBufferPointer) -> [UInt8]? {
        guard hex.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(hex.count / 2)
        var i = 0
        while i < hex.count {
            guard let byte = HexDigits.value(UnsafeRawBufferPointer(rebasing: hex[i..<(i + 2)])) else { return nil }
            out.append(UInt8(byte))
            i += 2
        }
        return out
    }

    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// Standard base64 with padding (RFC 4648 §4), as protobuf's JSON mapping writes bytes.
    static func base64(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var i = 0
        while i < bytes.count {
            let b0 = UInt32(bytes[i])
            let b1 = i + 1 < bytes.count ? UInt32(bytes[i + 1]) : 0
            let b2 = i + 2 < bytes.count ? UInt32(bytes[i + 2]) : 0
            let word = b0 << 16 | b1 << 8 | b2
            out.append(alphabet[Int(word >> 18 & 63)])
            out.append(alphabet[Int(word >> 12 & 63)])
            out.append(i + 1 < bytes.count ? alphabet[Int(word >> 6 & 63)] : UInt8(ascii: "="))
            out.append(i + 2 < bytes.count ? alphabet[Int(word & 63)] : UInt8(ascii: "="))
            i += 3
        }
        return out
    }
}
