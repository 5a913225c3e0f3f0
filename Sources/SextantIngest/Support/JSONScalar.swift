/// A JSON value that should be a scalar, as an access-log reader found it (Envoy's file logger
/// writes numbers and nulls, its OpenTelemetry logger strings and `-`).
package enum JSONScalar: Sendable, Hashable {
    case string(String)
    case number(Double)
    case bool(Bool)
    case null
    /// An object or array where a scalar was expected.
    case nested

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
