/// Hex trace and span ids, normalised the way Zipkin stores them.
package enum HexID {
    /// Lowercases and left-pads `raw` to the smallest allowed width that fits; nil if it is not hex
    /// or longer than the widest.
    package static func normalize(_ raw: String, widths: [Int]) -> String? {
        let lower = raw.lowercased()
        guard !lower.isEmpty, lower.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }),
            let width = widths.first(where: { lower.utf8.count <= $0 })
        else { return nil }
        return String(repeating: "0", count: width - lower.utf8.count) + lower
    }
}
