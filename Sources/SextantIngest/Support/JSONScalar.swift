/// A JSON value that should be a scalar; decodes whatever scalar a producer wrote (Envoy's file
/// logger writes numbers and nulls, its OpenTelemetry logger strings and `-`).
package enum JSONScalar: Decodable, Sendable, Hashable {
    case string(String)
    case number(Double)
    case bool(Bool)
    case null
    /// An object or array where a scalar was expected.
    case nested

    package init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let s = try Self.string(container) {
            self = .string(s)
        } else if let d = try? container.decode(Double.self) {
            self = .number(d)
        } else if let b = try? container.decode(Bool.self) {
            self = .bool(b)
        } else {
            self = .nested
        }
    }

    /// The value as a string; nil when it is not a string. A string that is not valid UTF-8 fails
    /// the record rather than being read as nothing.
    private static func string(_ container: any SingleValueDecodingContainer) throws -> String? {
        do {
            return try container.decode(String.self)
        } catch DecodingError.typeMismatch {
            return nil
        }
    }

    /// The value as text; nil for null, `-` and empty strings (Envoy's "no value").
    package var text: String? {
        switch self {
        case .string(let s): return s.isEmpty || s == "-" ? nil : s
        case .number(let d):
            if d == d.rounded(), abs(d) < 1e15 { return String(Int64(d)) }
            return String(d)
        case .bool(let b): return b ? "true" : "false"
        case .null, .nested: return nil
        }
    }

    /// The value as an integer, from a number or a numeric string.
    package var integer: Int64? {
        switch self {
        case .number(let d): return d.isFinite ? Int64(exactly: d.rounded()) : nil
        case .string(let s): return Int64(s.trimmingCharacters(in: " "))
        default: return nil
        }
    }
}

extension String {
    fileprivate func trimmingCharacters(in set: Character) -> Substring {
        var s = Substring(self)
        while s.first == set { s = s.dropFirst() }
        while s.last == set { s = s.dropLast() }
        return s
    }
}

/// Decodes an element of an array without failing the whole array.
package struct Failable<Wrapped: Decodable>: Decodable {
    package let result: Result<Wrapped, any Error>

    package init(from decoder: any Decoder) throws {
        do {
            result = .success(try Wrapped(from: decoder))
        } catch {
            result = .failure(error)
        }
    }
}
