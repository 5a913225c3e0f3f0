/// Why a series selector could not be parsed or is not allowed.
package struct SelectorError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What was wrong and, where it applies, where in the selector.
    package var message: String

    /// Creates an error with a message.
    package init(message: String) {
        self.message = message
    }

    /// The message.
    package var description: String {
        message
    }
}

/// A Prometheus instant-vector selector as passed in a `match[]` parameter.
///
/// Accepts `metric`, `metric{a="b",c!="d",e=~"re",f!~"re"}`, `{__name__=~"istio_.*"}` and the
/// quoted-name form `{"metric.name",a="b"}`; values may use `"…"`, `'…'` or raw `` `…` `` quoting.
/// See https://prometheus.io/docs/prometheus/latest/querying/basics/#instant-vector-selectors.
package struct SeriesSelector: Sendable, CustomStringConvertible {
    /// All conditions, the metric name first as an `__name__` equality matcher when one was given.
    package let matchers: [LabelMatcher]

    /// Parses one selector.
    ///
    /// - Throws: `SelectorError` naming the problem and its position.
    package init(parsing text: String) throws(SelectorError) {
        var parser = Parser(text)
        try self.init(matchers: parser.parse(), source: text)
    }

    /// Creates a selector from matchers, enforcing Prometheus's non-empty rule.
    ///
    /// - Throws: `SelectorError` when every matcher also matches the empty string.
    package init(matchers: [LabelMatcher]) throws(SelectorError) {
        try self.init(matchers: matchers, source: nil)
    }

    private init(matchers: [LabelMatcher], source: String?) throws(SelectorError) {
        // Without this rule `{job=~".*"}` would select every series in the store.
        guard matchers.contains(where: { !$0.matchesEmpty }) else {
            let shown = source.map { String(reflecting: $0) } ?? Self.render(matchers)
            throw SelectorError(
                message: "selector \(shown) needs a metric name or at least one matcher "
                    + "that does not match the empty string"
            )
        }
        self.matchers = matchers
    }

    /// The metric name when the selector pins one with `=`, for cheap pre-filtering.
    package var metricName: String? {
        matchers.first { $0.name == Self.metricNameLabel && $0.kind == .equal }?.value
    }

    /// Whether a series with this metric (sample) name and these labels is selected.
    ///
    /// A label the series lacks is treated as the empty string.
    package func matches(name: String, labels: [MetricLabel]) -> Bool {
        for matcher in matchers {
            let value: String
            if matcher.name == Self.metricNameLabel {
                value = name
            } else {
                value = labels.first { $0.name == matcher.name }?.value ?? ""
            }
            if !matcher.matches(value) {
                return false
            }
        }
        return true
    }

    /// Whether a series is selected, its label values read through `value` (empty when absent).
    package func matches(name: String, value: (String) -> String) -> Bool {
        matchers.allSatisfy { matcher in
            matcher.matches(matcher.name == Self.metricNameLabel ? name : value(matcher.name))
        }
    }

    /// The `label="value"` matchers a postings index can answer: equality to a non-empty value,
    /// the metric name aside.
    package var postingPairs: [(name: String, value: String)] {
        matchers.compactMap { matcher in
            matcher.kind == .equal && !matcher.value.isEmpty && matcher.name != Self.metricNameLabel
                ? (matcher.name, matcher.value) : nil
        }
    }

    /// Whether the sample's series is selected.
    package func matches(_ sample: MetricSample) -> Bool {
        matches(name: sample.name, labels: sample.labels)
    }

    /// The selector in canonical braces form, e.g. `{__name__="up",job="api"}`.
    package var description: String {
        Self.render(matchers)
    }

    /// The label under which Prometheus keeps the metric name.
    static let metricNameLabel = "__name__"

    private static func render(_ matchers: [LabelMatcher]) -> String {
        "{" + matchers.map(\.description).joined(separator: ",") + "}"
    }
}

extension SeriesSelector {
    /// A hand-written scanner for the selector grammar (PromQL's lexer rules for names and strings).
    private struct Parser {
        private let source: String
        private let bytes: [UInt8]
        private var index = 0

        init(_ source: String) {
            self.source = source
            self.bytes = Array(source.utf8)
        }

        mutating func parse() throws(SelectorError) -> [LabelMatcher] {
            skipSpace()
            guard index < bytes.count else {
                throw SelectorError(message: "empty selector")
            }
            var name: String?
            var nameOffset = 0
            var nameMatcherOffset: Int?
            var matchers: [LabelMatcher] = []
            if Self.isMetricNameStart(bytes[index]) {
                nameOffset = index
                name = readIdentifier(allowingColons: true)
                skipSpace()
            }
            if index < bytes.count, bytes[index] == UInt8(ascii: "{") {
                let open = index
                index += 1
                skipSpace()
                while true {
                    guard index < bytes.count else {
                        throw failure("missing \"}\" for the \"{\"", at: open)
                    }
                    if bytes[index] == UInt8(ascii: "}") {
                        index += 1
                        break
                    }
                    let itemOffset = index
                    let label: String
                    let quoted: Bool
                    if Self.isQuote(bytes[index]) {
                        label = try readQuoted()
                        quoted = true
                    } else if Self.isLabelNameStart(bytes[index]) {
                        label = readIdentifier(allowingColons: false)
                        quoted = false
                    } else {
                        throw unexpected(expecting: "a label name or \"}\"")
                    }
                    skipSpace()
                    if let kind = readOperator() {
                        skipSpace()
                        guard index < bytes.count, Self.isQuote(bytes[index]) else {
                            throw unexpected(expecting: "a quoted label value after \"\(kind.rawValue)\"")
                        }
                        let valueOffset = index
                        let value = try readQuoted()
                        do {
                            matchers.append(try LabelMatcher(name: label, kind: kind, value: value))
                        } catch {
                            throw failure(error.message, at: valueOffset)
                        }
                        if label == SeriesSelector.metricNameLabel, nameMatcherOffset == nil {
                            nameMatcherOffset = itemOffset
                        }
                    } else if quoted {
                        if let name {
                            throw failure(
                                "metric name must not be set twice (\"\(name)\" and \"\(label)\")",
                                at: itemOffset
                            )
                        }
                        name = label
                        nameOffset = itemOffset
                    } else {
                        throw unexpected(expecting: "a matching operator (=, !=, =~ or !~) after label name \(label)")
                    }
                    skipSpace()
                    if index < bytes.count, bytes[index] == UInt8(ascii: ",") {
                        index += 1
                        skipSpace()
                    } else if index < bytes.count, bytes[index] != UInt8(ascii: "}") {
                        throw unexpected(expecting: "\",\" or \"}\"")
                    }
                }
                skipSpace()
            } else if name == nil {
                throw unexpected(expecting: "a metric name or \"{\"")
            }
            guard index == bytes.count else {
                throw unexpected(expecting: "the end of the selector")
            }
            guard let name else {
                return matchers
            }
            if let nameMatcherOffset {
                throw failure("metric name \"\(name)\" must not also be matched by __name__", at: nameMatcherOffset)
            }
            do {
                let nameMatcher = try LabelMatcher(name: SeriesSelector.metricNameLabel, kind: .equal, value: name)
                return [nameMatcher] + matchers
            } catch {
                throw failure(error.message, at: nameOffset)
            }
        }

        // MARK: - Tokens

        private mutating func skipSpace() {
            while index < bytes.count {
                switch bytes[index] {
                case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\r"):
                    index += 1
                default:
                    return
                }
            }
        }

        private mutating func readIdentifier(allowingColons: Bool) -> String {
            let start = index
            index += 1
            while index < bytes.count {
                let byte = bytes[index]
                guard Self.isLabelNameStart(byte) || Self.isDigit(byte) || (allowingColons && byte == UInt8(ascii: ":"))
                else {
                    break
                }
                index += 1
            }
            return String(decoding: bytes[start..<index], as: UTF8.self)
        }

        private mutating func readOperator() -> LabelMatcher.Kind? {
            guard index < bytes.count else {
                return nil
            }
            let next = index + 1 < bytes.count ? bytes[index + 1] : 0
            switch (bytes[index], next) {
            case (UInt8(ascii: "="), UInt8(ascii: "~")):
                index += 2
                return .regexMatch
            case (UInt8(ascii: "="), _):
                index += 1
                return .equal
            case (UInt8(ascii: "!"), UInt8(ascii: "=")):
                index += 2
                return .notEqual
            case (UInt8(ascii: "!"), UInt8(ascii: "~")):
                index += 2
                return .regexNoMatch
            default:
                return nil
            }
        }

        /// Reads a `"…"` or `'…'` string with Go escapes, or a raw `` `…` `` string.
        private mutating func readQuoted() throws(SelectorError) -> String {
            let start = index
            let quote = bytes[index]
            index += 1
            var text: [UInt8] = []
            while true {
                guard index < bytes.count else {
                    throw failure("unterminated quoted string", at: start)
                }
                let byte = bytes[index]
                index += 1
                if byte == quote {
                    break
                }
                if quote == UInt8(ascii: "`") || byte != UInt8(ascii: "\\") {
                    if byte == UInt8(ascii: "\n"), quote != UInt8(ascii: "`") {
                        throw failure("newline in quoted string", at: start)
                    }
                    text.append(byte)
                    continue
                }
                try readEscape(after: index - 1, quote: quote, into: &text)
            }
            guard let string = String(validating: text, as: UTF8.self) else {
                throw failure("invalid UTF-8 in quoted string", at: start)
            }
            return string
        }

        private mutating func readEscape(
            after backslash: Int,
            quote: UInt8,
            into text: inout [UInt8]
        ) throws(SelectorError) {
            guard index < bytes.count else {
                throw failure("unterminated escape sequence", at: backslash)
            }
            let letter = bytes[index]
            index += 1
            switch letter {
            case UInt8(ascii: "a"): text.append(0x07)
            case UInt8(ascii: "b"): text.append(0x08)
            case UInt8(ascii: "f"): text.append(0x0C)
            case UInt8(ascii: "n"): text.append(0x0A)
            case UInt8(ascii: "r"): text.append(0x0D)
            case UInt8(ascii: "t"): text.append(0x09)
            case UInt8(ascii: "v"): text.append(0x0B)
            case UInt8(ascii: "\\"): text.append(letter)
            case quote: text.append(letter)
            case UInt8(ascii: "x"):
                text.append(UInt8(try readDigits(count: 2, radix: 16, escapeAt: backslash)))
            case UInt8(ascii: "0")...UInt8(ascii: "7"):
                index -= 1
                let value = try readDigits(count: 3, radix: 8, escapeAt: backslash)
                guard value <= 0xFF else {
                    throw failure("octal escape sequence out of range", at: backslash)
                }
                text.append(UInt8(value))
            case UInt8(ascii: "u"), UInt8(ascii: "U"):
                let value = try readDigits(count: letter == UInt8(ascii: "u") ? 4 : 8, radix: 16, escapeAt: backslash)
                guard let scalar = Unicode.Scalar(value) else {
                    throw failure("escape sequence is not a valid Unicode code point", at: backslash)
                }
                text.append(contentsOf: String(Character(scalar)).utf8)
            default:
                let shown = String(decoding: [letter], as: UTF8.self)
                throw failure("unknown escape sequence \"\\\(shown)\"", at: backslash)
            }
        }

        private mutating func readDigits(
            count: Int,
            radix: UInt32,
            escapeAt backslash: Int
        ) throws(SelectorError) -> UInt32 {
            var value: UInt32 = 0
            for _ in 0..<count {
                guard index < bytes.count, let digit = Self.digitValue(bytes[index]), digit < radix else {
                    throw failure("malformed escape sequence", at: backslash)
                }
                value = value * radix + digit
                index += 1
            }
            return value
        }

        // MARK: - Errors

        private func unexpected(expecting expectation: String) -> SelectorError {
            guard index < bytes.count else {
                return failure("unexpected end of input, expected \(expectation)", at: index)
            }
            // Show the whole character even when it is several UTF-8 bytes long.
            let rest = String(decoding: bytes[index...], as: UTF8.self)
            let shown = rest.first.map { String($0) } ?? ""
            return failure("unexpected \(String(reflecting: shown)), expected \(expectation)", at: index)
        }

        /// An error whose message ends with the 1-based character position and the selector.
        private func failure(_ problem: String, at offset: Int) -> SelectorError {
            let column = String(decoding: bytes[..<min(offset, bytes.count)], as: UTF8.self).count + 1
            return SelectorError(message: "\(problem) at position \(column) in selector \(String(reflecting: source))")
        }

        // MARK: - Character classes

        private static func isDigit(_ byte: UInt8) -> Bool {
            byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
        }

        private static func isLabelNameStart(_ byte: UInt8) -> Bool {
            (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
                || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
                || byte == UInt8(ascii: "_")
        }

        private static func isMetricNameStart(_ byte: UInt8) -> Bool {
            isLabelNameStart(byte) || byte == UInt8(ascii: ":")
        }

        private static func isQuote(_ byte: UInt8) -> Bool {
            byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "'") || byte == UInt8(ascii: "`")
        }

        private static func digitValue(_ byte: UInt8) -> UInt32? {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): UInt32(byte - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): UInt32(byte - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): UInt32(byte - UInt8(ascii: "A") + 10)
            default: nil
            }
        }
    }
}
