import CRE2

/// A regular expression in RE2's syntax (Go's, which Prometheus uses), matched by RE2 in time
/// linear in the text: no pattern makes a match backtrack, so `(a+)+b` against a long run of `a`
/// costs what `a+b` costs. Thread-safe once built, as RE2 documents its matching.
final class RE2Regex: @unchecked Sendable {
    struct CompileError: Error, CustomStringConvertible {
        /// RE2's reason, e.g. `missing ): (`.
        var description: String
    }

    private let handle: OpaquePointer

    /// - Parameter dotMatchesNewline: whether `.` also matches `\n` (Prometheus 3's matchers).
    init(_ pattern: String, dotMatchesNewline: Bool) throws(CompileError) {
        var error: UnsafeMutablePointer<CChar>?
        var pattern = pattern
        let compiled = pattern.withUTF8 { bytes in
            bytes.withMemoryRebound(to: CChar.self) {
                sextant_re2_compile($0.baseAddress, $0.count, dotMatchesNewline ? 1 : 0, &error)
            }
        }
        guard let compiled else {
            defer { sextant_re2_free_error(error) }
            throw CompileError(description: error.map { String(cString: $0) } ?? "does not compile")
        }
        handle = compiled
    }

    deinit {
        sextant_re2_free(handle)
    }

    /// Whether the whole of `text` matches.
    func matchesWhole(_ text: String) -> Bool {
        var text = text
        return text.withUTF8 { bytes in
            bytes.withMemoryRebound(to: CChar.self) { sextant_re2_full_match(handle, $0.baseAddress, $0.count) == 1 }
        }
    }
}
