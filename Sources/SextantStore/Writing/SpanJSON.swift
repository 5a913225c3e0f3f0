import Foundation
import SextantModel

/// Compact JSON for the span columns that hold structure (tags, endpoints, annotations).
enum SpanJSON {
    static func encode(_ tags: [String: String]) -> String {
        var out = "{"
        for (i, key) in tags.keys.sorted().enumerated() {
            if i > 0 { out += "," }
            appendString(key, to: &out)
            out += ":"
            appendString(tags[key]!, to: &out)
        }
        return out + "}"
    }

    static func encode(_ endpoint: Span.Endpoint) -> String {
        var fields: [String] = []
        if let s = endpoint.serviceName { fields.append("\"serviceName\":" + quoted(s)) }
        if let s = endpoint.ipv4 { fields.append("\"ipv4\":" + quoted(s)) }
        if let s = endpoint.ipv6 { fields.append("\"ipv6\":" + quoted(s)) }
        if let p = endpoint.port { fields.append("\"port\":\(p)") }
        return "{" + fields.joined(separator: ",") + "}"
    }

    static func encode(_ annotations: [Span.Annotation]) -> String {
        "[" + annotations.map { "{\"timestamp\":\($0.timestampMicros),\"value\":\(quoted($0.value))}" }
            .joined(separator: ",") + "]"
    }

    static func quoted(_ s: String) -> String {
        var out = ""
        appendString(s, to: &out)
        return out
    }

    static func appendString(_ s: String, to out: inout String) {
        out += "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }
}

extension SpanJSON {
    /// Reads back an object written by `encode(_: [String: String])`.
    static func decodeObject(_ text: String) -> [String: String] {
        guard let data = text.data(using: .utf8),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: String]
        else { return [:] }
        return object
    }
}
