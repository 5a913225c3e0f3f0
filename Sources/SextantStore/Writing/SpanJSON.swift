import Foundation
import SextantModel

/// Compact JSON for the span columns that hold structure (tags, endpoints, annotations).
///
/// Written byte by byte into one buffer: receivers encode every span's tags before it is queued,
/// on the hot path of ingest.
enum SpanJSON {
    /// A flat object of strings, keys sorted.
    static func encode(_ tags: Attributes) -> String {
        var out: [UInt8] = []
        var capacity = 2
        for (key, value) in tags { capacity += key.utf8.count + value.utf8.count + 6 }
        out.reserveCapacity(capacity)
        out.append(UInt8(ascii: "{"))
        for (i, entry) in tags.sortedByKey.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            appendString(entry.key, to: &out)
            out.append(UInt8(ascii: ":"))
            appendString(entry.value, to: &out)
        }
        out.append(UInt8(ascii: "}"))
        return String(decoding: out, as: UTF8.self)
    }

    static func encode(_ object: [String: String]) -> String {
        encode(Attributes(object))
    }

    static func encode(_ endpoint: Span.Endpoint) -> String {
        var out: [UInt8] = [UInt8(ascii: "{")]
        func field(_ name: String) {
            if out.count > 1 { out.append(UInt8(ascii: ",")) }
            out.append(contentsOf: name.utf8)
        }
        if let s = endpoint.serviceName {
            field("\"serviceName\":")
            appendString(s, to: &out)
        }
        if let s = endpoint.ipv4 {
            field("\"ipv4\":")
            appendString(s, to: &out)
        }
        if let s = endpoint.ipv6 {
            field("\"ipv6\":")
            appendString(s, to: &out)
        }
        if let p = endpoint.port {
            field("\"port\":")
            out.append(contentsOf: String(p).utf8)
        }
        out.append(UInt8(ascii: "}"))
        return String(decoding: out, as: UTF8.self)
    }

    static func encode(_ annotations: [Span.Annotation]) -> String {
        var out: [UInt8] = [UInt8(ascii: "[")]
        for (i, annotation) in annotations.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            out.append(contentsOf: "{\"timestamp\":".utf8)
            out.append(contentsOf: String(annotation.timestampMicros).utf8)
            out.append(contentsOf: ",\"value\":".utf8)
            appendString(annotation.value, to: &out)
            out.append(UInt8(ascii: "}"))
        }
        out.append(UInt8(ascii: "]"))
        return String(decoding: out, as: UTF8.self)
    }

    /// `s` as a JSON string: quotes, backslashes and control characters escaped, the rest as is.
    static func appendString(_ s: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in s.utf8 {
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"):
                out.append(UInt8(ascii: "\\"))
                out.append(byte)
            case UInt8(ascii: "\n"):
                out.append(UInt8(ascii: "\\"))
                out.append(UInt8(ascii: "n"))
            case UInt8(ascii: "\r"):
                out.append(UInt8(ascii: "\\"))
                out.append(UInt8(ascii: "r"))
            case UInt8(ascii: "\t"):
                out.append(UInt8(ascii: "\\"))
                out.append(UInt8(ascii: "t"))
            case 0..<0x20:
                out.append(contentsOf: "\\u00".utf8)
                out.append(hexDigits[Int(byte >> 4)])
                out.append(hexDigits[Int(byte & 0xF)])
            default:
                out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)
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
