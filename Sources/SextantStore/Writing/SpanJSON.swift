import Foundation
import SextantModel

/// Compact JSON for the span columns that hold structure (tags, endpoints, annotations).
enum SpanJSON {
    static func encode(_ tags: Attributes) -> String {
        var out = "{"
        for (i, pair) in tags.sortedByKey.enumerated() {
            if i > 0 { out += "," }
            appendString(pair.key, to: &out)
            out += ":"
            appendString(pair.value, to: &out)
        }
        return out + "}"
    }

    static func encode(_ object: [String: String]) -> String {
        encode(Attributes(object))
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
    /// Reads back an object written by `encode(_: [String: String])` (a flat object of strings);
    /// anything else yields what could be read.
    static func decodeObject(_ text: String) -> Attributes {
        var out = Attributes()
        var scalars = text.unicodeScalars[...]
        func skipSpaces() {
            while let c = scalars.first, c == " " || c == "\n" || c == "\t" || c == "\r" { scalars.removeFirst() }
        }
        func string() -> String? {
            guard scalars.first == "\"" else { return nil }
            scalars.removeFirst()
            var value = String.UnicodeScalarView()
            while let c = scalars.popFirst() {
                switch c {
                case "\"": return String(value)
                case "\\":
                    guard let e = scalars.popFirst() else { return nil }
                    switch e {
                    case "n": value.append("\n")
                    case "r": value.append("\r")
                    case "t": value.append("\t")
                    case "u":
                        let hex = String(String.UnicodeScalarView(scalars.prefix(4)))
                        scalars = scalars.dropFirst(4)
                        guard let code = UInt32(hex, radix: 16), let scalar = Unicode.Scalar(code) else { return nil }
                        value.append(scalar)
                    default: value.append(e)
                    }
                default: value.append(c)
                }
            }
            return nil
        }
        skipSpaces()
        guard scalars.popFirst() == "{" else { return out }
        while true {
            skipSpaces()
            if scalars.first == "}" { break }
            guard let key = string() else { break }
            skipSpaces()
            guard scalars.popFirst() == ":" else { break }
            skipSpaces()
            guard let value = string() else { break }
            out[key] = value
            skipSpaces()
            if scalars.first == "," { scalars.removeFirst() }
        }
        return out
    }
}
