package import Foundation
package import SextantModel

/// OTLP/JSON differs from protobuf's canonical JSON mapping in one way that matters: trace and
/// span ids are hex strings, not base64. This rewrites them so SwiftProtobuf's JSON decoder can
/// read the rest (lowerCamelCase keys, enums as numbers, int64 as strings are all standard).
/// Spec: https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding
package enum OTLPJSON {
    private static let idKeys: Set<String> = ["traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"]

    package static func protobufJSON(from body: [UInt8]) throws(DecodeError) -> Data {
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: Data(body), options: [.fragmentsAllowed])
        } catch {
            throw DecodeError(.malformed, "body is not valid JSON")
        }
        guard object is [String: Any] else { throw DecodeError(.malformed, "body must be a JSON object") }
        let rewritten = try rewrite(object)
        do {
            return try JSONSerialization.data(withJSONObject: rewritten)
        } catch {
            throw DecodeError(.malformed, "body cannot be re-encoded")
        }
    }

    private static func rewrite(_ value: Any) throws(DecodeError) -> Any {
        if let dict = value as? [String: Any] {
            var out: [String: Any] = [:]
            for (key, v) in dict {
                if idKeys.contains(key), let hex = v as? String {
                    guard let bytes = bytes(hex: hex) else {
                        throw DecodeError(.malformed, "'\(key)' must be a hex string, got '\(hex.prefix(40))'")
                    }
                    out[key] = Data(bytes).base64EncodedString()
                } else {
                    out[key] = try rewrite(v)
                }
            }
            return out
        }
        if let array = value as? [Any] {
            var out: [Any] = []
            out.reserveCapacity(array.count)
            for v in array { out.append(try rewrite(v)) }
            return out
        }
        return value
    }

    private static func bytes(hex: String) -> [UInt8]? {
        let utf8 = Array(hex.utf8)
        guard utf8.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(utf8.count / 2)
        var i = 0
        while i < utf8.count {
            guard let hi = nibble(utf8[i]), let lo = nibble(utf8[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        return out
    }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case 48...57: c - 48
        case 97...102: c - 87
        case 65...70: c - 55
        default: nil
        }
    }
}
