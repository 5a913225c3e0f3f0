/// One `name op "value"` condition of a Prometheus series selector.
///
/// Regular expressions are RE2's, fully anchored, matched in time linear in the value, and `.`
/// also matches a newline, as in Prometheus 3 (2.x excluded newlines).
/// A label that a series lacks counts as the empty string.
package struct LabelMatcher: Sendable, CustomStringConvertible {
    /// The comparison a matcher performs.
    package enum Kind: String, Sendable, CaseIterable {
        case equal = "="
        case notEqual = "!="
        case regexMatch = "=~"
        case regexNoMatch = "!~"
    }

    /// The label the matcher looks at; `__name__` is the metric name.
    package let name: String
    /// The comparison.
    package let kind: Kind
    /// The literal value or the (unanchored) regular expression as written.
    package let value: String
    /// Whether a series without the label (or with it empty) satisfies the matcher.
    package let matchesEmpty: Bool
    private let pattern: Pattern

    /// Creates a matcher, compiling `value` when `kind` is a regex match.
    ///
    /// - Throws: `SelectorError` when the regular expression does not compile.
    package init(name: String, kind: Kind, value: String) throws(SelectorError) {
        self.name = name
        self.kind = kind
        self.value = value
        let pattern: Pattern = switch kind {
        case .equal, .notEqual: .literal(value)
        case .regexMatch, .regexNoMatch: try Pattern(regex: value, label: name)
        }
        self.pattern = pattern
        let emptyHit = pattern.matches("")
        matchesEmpty = kind == .equal || kind == .regexMatch ? emptyHit : !emptyHit
    }

    /// Whether a label value satisfies the matcher (pass `""` for an absent label).
    package func matches(_ labelValue: String) -> Bool {
        switch kind {
        case .equal, .regexMatch: pattern.matches(labelValue)
        case .notEqual, .regexNoMatch: !pattern.matches(labelValue)
        }
    }

    /// The matcher in selector syntax, e.g. `job=~"api|web"`.
    package var description: String {
        var escaped = ""
        for character in value.unicodeScalars {
            switch character {
            case "\\": escaped += "\\\\"
            case "\"": escaped += "\\\""
            case "\n": escaped += "\\n"
            default: escaped.unicodeScalars.append(character)
            }
        }
        return "\(name)\(kind.rawValue)\"\(escaped)\""
    }
}

extension LabelMatcher {
    /// A compiled value test; common regex shapes skip the regex engine entirely.
    private enum Pattern: Sendable {
        case literal(String)
        case anyOf(Set<String>)
        case prefix(String)
        case anything
        case nonEmpty
        case regex(RE2Regex)

        /// Characters that make a pattern more than a literal string.
        private static let metacharacters: Set<Character> = [
            "\\", ".", "+", "*", "?", "(", ")", "|", "[", "]", "{", "}", "^", "$",
        ]

        init(regex source: String, label: String) throws(SelectorError) {
            // RE2 anchors the whole expression itself, so `a)|(b` cannot pair up with anything.
            let compiled: RE2Regex
            do {
                compiled = try RE2Regex(source, dotMatchesNewline: true)
            } catch {
                throw SelectorError(message: "invalid regular expression \"\(source)\" for label \(label)")
            }
            let isLiteral: (Substring) -> Bool = { text in
                !text.contains { Self.metacharacters.contains($0) }
            }
            if source == ".*" {
                self = .anything
            } else if source == ".+" {
                self = .nonEmpty
            } else if isLiteral(source[...]) {
                self = .literal(source)
            } else if source.hasSuffix(".*"), isLiteral(source.dropLast(2)) {
                self = .prefix(String(source.dropLast(2)))
            } else if source.contains("|"),
                case let alternatives = source.split(separator: "|", omittingEmptySubsequences: false),
                alternatives.allSatisfy(isLiteral)
            {
                self = .anyOf(Set(alternatives.map(String.init)))
            } else {
                self = .regex(compiled)
            }
        }

        func matches(_ text: String) -> Bool {
            switch self {
            case .literal(let literal):
                return text == literal
            case .anyOf(let alternatives):
                return alternatives.contains(text)
            case .prefix(let prefix):
                return text.utf8.starts(with: prefix.utf8)
            case .anything:
                return true
            case .nonEmpty:
                return !text.isEmpty
            case .regex(let regex):
                return regex.matchesWhole(text)
            }
        }
    }
}
