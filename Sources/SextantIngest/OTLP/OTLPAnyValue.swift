internal import Foundation

/// An OTLP `AnyValue` read from the wire, flattened to text as `Opentelemetry_Proto_Common_V1_AnyValue.text`
/// flattens the SwiftProtobuf message.
///
/// A string value stays a slice of the body until `text` makes (or interns) its `String`. A value
/// that occurs more than once is merged as protobuf merges messages: the last member of the oneof
/// wins, and two arrays (or key-value lists) in a row are concatenated.
struct OTLPAnyValue {
    private enum Value {
        case none
        case string(UnsafeRawBufferPointer)
        case bool(Bool)
        case int(Int64)
        case double(Double)
        case bytes(UnsafeRawBufferPointer)
        /// The elements' text.
        case array([String])
        /// `key=value` per entry.
        case kvlist([String])
    }

    private var value = Value.none

    /// Reads one occurrence of the value (the body of an `AnyValue` field), over what was read before.
    mutating func merge(_ r: inout ProtobufReader) throws(ProtobufReader.WireError) {
        while let field = try r.next() {
            switch (field.number, field.wireType) {
            case (1, .lengthDelimited): value = .string(try r.string())
            case (2, .varint): value = .bool(try r.bool())
            case (3, .varint): value = .int(Int64(bitPattern: try r.varint()))
            case (4, .fixed64): value = .double(Double(bitPattern: try r.fixed64()))
            case (5, .lengthDelimited):
                var list = try r.message()
                var elements: [String]
                if case .array(let earlier) = value { elements = earlier } else { elements = [] }
                while let inner = try list.next() {
                    guard inner.number == 1, inner.wireType == .lengthDelimited else {
                        try list.skip(inner)
                        continue
                    }
                    var element = try list.message()
                    var any = OTLPAnyValue()
                    try any.merge(&element)
                    elements.append(any.text(strings: nil))
                }
                value = .array(elements)
            case (6, .lengthDelimited):
                var list = try r.message()
                var entries: [String]
                if case .kvlist(let earlier) = value { entries = earlier } else { entries = [] }
                while let inner = try list.next() {
                    guard inner.number == 1, inner.wireType == .lengthDelimited else {
                        try list.skip(inner)
                        continue
                    }
                    var pair = try list.message()
                    let (key, any) = try Self.keyValue(&pair)
                    entries.append(String(decoding: key, as: UTF8.self) + "=" + any.text(strings: nil))
                }
                value = .kvlist(entries)
            case (7, .lengthDelimited): value = .bytes(try r.bytes())
            default: try r.skip(field)
            }
        }
    }

    /// Reads an OTLP `KeyValue`: its key (empty when absent) and its value.
    static func keyValue(_ r: inout ProtobufReader) throws(ProtobufReader.WireError)
        -> (key: UnsafeRawBufferPointer, value: OTLPAnyValue)
    {
        var key = UnsafeRawBufferPointer(start: nil, count: 0)
        var value = OTLPAnyValue()
        while let field = try r.next() {
            switch (field.number, field.wireType) {
            case (1, .lengthDelimited): key = try r.string()
            case (2, .lengthDelimited):
                var body = try r.message()
                try value.merge(&body)
            default: try r.skip(field)
            }
        }
        return (key, value)
    }

    /// Calls `body` with the value's text as UTF-8: a string's own bytes, anything else as `text` makes it.
    func withText<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        if case .string(let bytes) = value { return try body(bytes) }
        var made = text(strings: nil)
        return try made.withUTF8 { try body(UnsafeRawBufferPointer($0)) }
    }

    /// The value as text (arrays and maps as JSON-like text); strings interned when a table is given.
    func text(strings: InternTable?) -> String {
        switch value {
        case .none: return ""
        case .string(let bytes):
            return strings?.string(bytes) ?? String(decoding: bytes, as: UTF8.self)
        case .bool(let b): return b ? "true" : "false"
        case .int(let i): return String(i)
        case .double(let d): return String(d)
        case .bytes(let bytes): return Data(bytes).base64EncodedString()
        case .array(let elements): return "[" + elements.joined(separator: ",") + "]"
        case .kvlist(let entries): return "{" + entries.joined(separator: ",") + "}"
        }
    }
}
