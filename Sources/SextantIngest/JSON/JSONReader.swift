internal import SextantModel

/// A forward-only JSON reader over the bytes of a body: no Foundation, no intermediate values.
///
/// A decoder walks the document with it (`openObject`, `key`, `nextMember`, the scalar readers,
/// `skipValue`) and turns only what its model needs into Swift values. Syntax errors throw
/// `JSONReader.SyntaxError` naming the byte offset; a decoder reports them as "invalid JSON: …".
/// Grammar: RFC 8259.
struct JSONReader {
    /// What the next value is, from its first byte.
    enum ValueKind {
        case string, number, object, array, bool, null
    }

    /// The document is not JSON.
    struct SyntaxError: Error, CustomStringConvertible {
        var message: String
        var offset: Int
        var description: String { "\(message) at byte \(offset)" }
    }

    /// A string token: its raw bytes between the quotes, escapes not yet undone.
    struct RawString {
        var start: Int
        var end: Int
        /// Whether it contains a backslash escape.
        var escaped: Bool
        /// Whether every byte is ASCII (then it is valid UTF-8 as it stands).
        var ascii: Bool
        var count: Int { end - start }
    }

    /// How deep objects and arrays may nest before the reader gives up (a stack bound).
    static let maxDepth = 128

    let bytes: UnsafeRawBufferPointer
    private(set) var offset: Int

    init(_ bytes: UnsafeRawBufferPointer, offset: Int = 0) {
        self.bytes = bytes
        self.offset = offset
    }

    var isAtEnd: Bool { offset >= bytes.count }

    func fail(_ message: String, at position: Int? = nil) -> SyntaxError {
        SyntaxError(message: message, offset: position ?? offset)
    }

    // MARK: - Structure

    @inline(__always)
    mutating func skipSpace() {
        // Most values follow their separator directly.
        if offset < bytes.count, bytes[offset] > 0x20 { return }
        while offset < bytes.count {
            switch bytes[offset] {
            case 0x20, 0x0A, 0x0D, 0x09: offset += 1
            default: return
            }
        }
    }

    /// The kind of the next value, after white space; throws at the end or on a byte no value starts with.
    mutating func peekKind() throws(SyntaxError) -> ValueKind {
        skipSpace()
        guard offset < bytes.count else { throw fail("unexpected end of input") }
        switch bytes[offset] {
        case UInt8(ascii: "\""): return .string
        case UInt8(ascii: "{"): return .object
        case UInt8(ascii: "["): return .array
        case UInt8(ascii: "t"), UInt8(ascii: "f"): return .bool
        case UInt8(ascii: "n"): return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number
        default: throw fail("unexpected character \(Self.show(bytes[offset]))")
        }
    }

    /// Consumes `[`; returns false when the array is empty (its `]` consumed too).
    mutating func openArray() throws(SyntaxError) -> Bool {
        try expect(UInt8(ascii: "["), "'['")
        skipSpace()
        if offset < bytes.count, bytes[offset] == UInt8(ascii: "]") {
            offset += 1
            return false
        }
        return true
    }

    /// After an element: consumes `,` (true, another follows) or `]` (false).
    mutating func nextElement() throws(SyntaxError) -> Bool {
        skipSpace()
        guard offset < bytes.count else { throw fail("unexpected end of input in an array") }
        switch bytes[offset] {
        case UInt8(ascii: ","):
            offset += 1
            return true
        case UInt8(ascii: "]"):
            offset += 1
            return false
        default: throw fail("expected ',' or ']' but found \(Self.show(bytes[offset]))")
        }
    }

    /// Consumes `{`; returns false when the object is empty (its `}` consumed too).
    mutating func openObject() throws(SyntaxError) -> Bool {
        try expect(UInt8(ascii: "{"), "'{'")
        skipSpace()
        if offset < bytes.count, bytes[offset] == UInt8(ascii: "}") {
            offset += 1
            return false
        }
        return true
    }

    /// A member's key and its `:`.
    mutating func key() throws(SyntaxError) -> RawString {
        skipSpace()
        guard offset < bytes.count, bytes[offset] == UInt8(ascii: "\"") else {
            throw fail(offset < bytes.count ? "expected a string key but found \(Self.show(bytes[offset]))" : "unexpected end of input in an object")
        }
        let key = try stringAfterQuote()
        // Compact JSON has the colon right after the key.
        if offset < bytes.count, bytes[offset] == UInt8(ascii: ":") {
            offset += 1
        } else {
            try expect(UInt8(ascii: ":"), "':'")
        }
        return key
    }

    /// After a member's value: consumes `,` (true, another follows) or `}` (false).
    mutating func nextMember() throws(SyntaxError) -> Bool {
        if offset < bytes.count, bytes[offset] == UInt8(ascii: ",") {
            offset += 1
            return true
        }
        skipSpace()
        guard offset < bytes.count else { throw fail("unexpected end of input in an object") }
        switch bytes[offset] {
        case UInt8(ascii: ","):
            offset += 1
            return true
        case UInt8(ascii: "}"):
            offset += 1
            return false
        default: throw fail("expected ',' or '}' but found \(Self.show(bytes[offset]))")
        }
    }

    @inline(__always)
    private mutating func expect(_ byte: UInt8, _ what: String) throws(SyntaxError) {
        skipSpace()
        guard offset < bytes.count else { throw fail("unexpected end of input, expected \(what)") }
        guard bytes[offset] == byte else { throw fail("expected \(what) but found \(Self.show(bytes[offset]))") }
        offset += 1
    }

    /// Whether the raw bytes of `string` are exactly `literal` (for keys without escapes).
    @inline(__always)
    func equals(_ string: RawString, _ literal: StaticString) -> Bool {
        guard !string.escaped, string.count == literal.utf8CodeUnitCount else { return false }
        return Self.same(bytes.baseAddress! + string.start, literal.utf8Start, string.count)
    }

    /// The bytes of a string without escapes (keys are compared with these).
    func slice(_ string: RawString) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: bytes[string.start..<string.end])
    }

    // MARK: - Scalars

    /// Reads a string token; the reader stands after its closing quote.
    mutating func rawString() throws(SyntaxError) -> RawString {
        skipSpace()
        guard offset < bytes.count, bytes[offset] == UInt8(ascii: "\"") else { throw fail("expected a string") }
        return try stringAfterQuote()
    }

    /// Reads a string token whose opening quote is at `offset`.
    @inline(__always)
    private mutating func stringAfterQuote() throws(SyntaxError) -> RawString {
        let start = offset + 1
        var i = start
        var escaped = false
        var high: UInt8 = 0
        // Eight bytes at a time while none is a quote, a backslash, a control character or
        // non-ASCII (SWAR: a byte's high bit marks a match). The lowest flagged byte is exact (a
        // borrow only flags bytes above a real match), so the scan jumps straight to it.
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        while true {
            while i + 8 <= bytes.count {
                let word = bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self)
                let quote = word ^ (ones &* 0x22)
                let slash = word ^ (ones &* 0x5C)
                let hasQuote = (quote &- ones) & ~quote & highs
                let hasSlash = (slash &- ones) & ~slash & highs
                let hasControl = (word &- ones &* 0x20) & ~word & highs
                let flagged = hasQuote | hasSlash | hasControl | (word & highs)
                if flagged != 0 {
                    i += flagged.trailingZeroBitCount >> 3
                    break
                }
                i += 8
            }
            // One byte that is special, or one of the last seven.
            guard i < bytes.count else { throw fail("unterminated string", at: start - 1) }
            let byte = bytes[i]
            if byte == UInt8(ascii: "\"") { break }
            if byte == UInt8(ascii: "\\") {
                escaped = true
                i += 1
                guard i < bytes.count else { throw fail("unterminated string", at: start - 1) }
                switch bytes[i] {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                    UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    i += 1
                case UInt8(ascii: "u"):
                    guard i + 4 < bytes.count,
                        HexDigits.value(UnsafeRawBufferPointer(rebasing: bytes[(i + 1)..<(i + 5)])) != nil
                    else { throw fail("invalid \\u escape", at: i - 1) }
                    i += 5
                default: throw fail("invalid escape \\\(Self.show(bytes[i]))", at: i - 1)
                }
                continue
            }
            guard byte >= 0x20 else { throw fail("control character in a string", at: i) }
            high |= byte
            i += 1
        }
        offset = i + 1
        return RawString(start: start, end: i, escaped: escaped, ascii: high < 0x80)
    }

    /// The text of a string token; nil when its bytes are not valid UTF-8.
    func text(_ string: RawString) -> String? {
        if !string.escaped {
            let slice = self.slice(string)
            if string.ascii { return String(decoding: slice, as: UTF8.self) }
            return String(validating: slice, as: UTF8.self)
        }
        return unescaped(string)
    }

    private func unescaped(_ string: RawString) -> String? {
        var out: [UInt8] = []
        out.reserveCapacity(string.count)
        var i = string.start
        while i < string.end {
            let byte = bytes[i]
            guard byte == UInt8(ascii: "\\") else {
                out.append(byte)
                i += 1
                continue
            }
            let e = bytes[i + 1]
            i += 2
            switch e {
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var code = UInt32(HexDigits.value(UnsafeRawBufferPointer(rebasing: bytes[i..<(i + 4)]))!)
                i += 4
                if (0xD800..<0xDC00).contains(code), i + 6 <= string.end, bytes[i] == UInt8(ascii: "\\"),
                    bytes[i + 1] == UInt8(ascii: "u"),
                    let low = HexDigits.value(UnsafeRawBufferPointer(rebasing: bytes[(i + 2)..<(i + 6)])),
                    (0xDC00..<0xE000).contains(low)
                {
                    code = 0x10000 + ((code - 0xD800) << 10) + (UInt32(low) - 0xDC00)
                    i += 6
                }
                // A lone surrogate cannot be text.
                guard let scalar = Unicode.Scalar(code) else { return nil }
                out.append(contentsOf: UTF8.encode(scalar)!)
            default: out.append(e)
            }
        }
        return String(validating: out, as: UTF8.self)
    }

    /// A number token's bytes; the reader stands after it.
    mutating func rawNumber() throws(SyntaxError) -> Range<Int> {
        skipSpace()
        let start = offset
        var i = offset
        func digits() -> Int {
            let from = i
            while i < bytes.count, bytes[i] >= 0x30, bytes[i] <= 0x39 { i += 1 }
            return i - from
        }
        if i < bytes.count, bytes[i] == UInt8(ascii: "-") { i += 1 }
        let intStart = i
        let intDigits = digits()
        guard intDigits > 0 else { throw fail("invalid number", at: start) }
        guard intDigits == 1 || bytes[intStart] != 0x30 else { throw fail("a number has a leading zero", at: start) }
        if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
            i += 1
            guard digits() > 0 else { throw fail("invalid number", at: start) }
        }
        if i < bytes.count, bytes[i] | 0x20 == UInt8(ascii: "e") {
            i += 1
            if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
            guard digits() > 0 else { throw fail("invalid number", at: start) }
        }
        offset = i
        return start..<i
    }

    /// A number token as an integer when it is one exactly (no fraction or exponent, fits 64 bits).
    func integer(_ number: Range<Int>) -> Int64? {
        var i = number.lowerBound
        let negative = bytes[i] == UInt8(ascii: "-")
        if negative { i += 1 }
        var value: Int64 = 0
        while i < number.upperBound {
            let byte = bytes[i]
            guard byte >= 0x30, byte <= 0x39 else { return nil }
            let (times, o1) = value.multipliedReportingOverflow(by: 10)
            let (sum, o2) = negative ? times.subtractingReportingOverflow(Int64(byte - 0x30))
                : times.addingReportingOverflow(Int64(byte - 0x30))
            if o1 || o2 { return nil }
            value = sum
            i += 1
        }
        return value
    }

    /// A number token as a double.
    func double(_ number: Range<Int>) -> Double {
        if let exact = integer(number), exact.magnitude < 1 << 53 { return Double(exact) }
        return Double(String(decoding: UnsafeRawBufferPointer(rebasing: bytes[number]), as: UTF8.self)) ?? .nan
    }

    /// The text of a number token, as written.
    func numberText(_ number: Range<Int>) -> String {
        String(decoding: UnsafeRawBufferPointer(rebasing: bytes[number]), as: UTF8.self)
    }

    /// Reads `true` or `false`.
    mutating func bool() throws(SyntaxError) -> Bool {
        skipSpace()
        if literal("true") { return true }
        if literal("false") { return false }
        throw fail("expected true or false")
    }

    /// Reads `null`.
    mutating func null() throws(SyntaxError) {
        skipSpace()
        guard literal("null") else { throw fail("expected null") }
    }

    private mutating func literal(_ word: StaticString) -> Bool {
        let n = word.utf8CodeUnitCount
        guard offset + n <= bytes.count, Self.same(bytes.baseAddress! + offset, word.utf8Start, n) else {
            return false
        }
        offset += n
        return true
    }

    /// Reads past one value of any kind, checking its syntax.
    mutating func skipValue(depth: Int = 0) throws(SyntaxError) {
        guard depth < Self.maxDepth else { throw fail("nested more than \(Self.maxDepth) levels deep") }
        switch try peekKind() {
        case .string: _ = try rawString()
        case .number: _ = try rawNumber()
        case .bool: _ = try bool()
        case .null: try null()
        case .array:
            var more = try openArray()
            while more {
                try skipValue(depth: depth + 1)
                more = try nextElement()
            }
        case .object:
            var more = try openObject()
            while more {
                _ = try key()
                try skipValue(depth: depth + 1)
                more = try nextMember()
            }
        }
    }

    /// Checks that nothing but white space follows the document.
    mutating func finish() throws(SyntaxError) {
        skipSpace()
        guard offset == bytes.count else { throw fail("unexpected \(Self.show(bytes[offset])) after the document") }
    }

    @inline(__always)
    static func same(_ a: UnsafeRawPointer, _ b: UnsafePointer<UInt8>, _ count: Int) -> Bool {
        // Eight bytes at a time, the last word overlapping the one before it.
        if count >= 8 {
            let other = UnsafeRawPointer(b)
            var i = 0
            while i + 8 < count {
                if a.loadUnaligned(fromByteOffset: i, as: UInt64.self) != other.loadUnaligned(fromByteOffset: i, as: UInt64.self) {
                    return false
                }
                i += 8
            }
            return a.loadUnaligned(fromByteOffset: count - 8, as: UInt64.self)
                == other.loadUnaligned(fromByteOffset: count - 8, as: UInt64.self)
        }
        for i in 0..<count where a.load(fromByteOffset: i, as: UInt8.self) != b[i] { return false }
        return true
    }

    static func show(_ byte: UInt8) -> String {
        (0x21..<0x7F).contains(byte) ? "'\(Character(Unicode.Scalar(byte)))'" : "byte 0x" + String(byte, radix: 16)
    }
}
