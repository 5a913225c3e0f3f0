import Testing

import SextantModel

struct HexDigitsTests {
    /// The value digit by digit: what the word-at-a-time path must agree with.
    private func reference(_ text: [UInt8]) -> UInt64? {
        var value: UInt64 = 0
        for byte in text {
            guard let digit = UInt8(String(UnicodeScalar(byte)), radix: 16), byte < 0x80 else { return nil }
            value = value << 4 | UInt64(digit)
        }
        return value
    }

    @Test func sixteenDigitsAgreeWithDigitByDigit() {
        // Seeded: a failure names inputs that fail again.
        var generator = SplitMix64(seed: 0x5EED_4E58)
        let alphabet = Array("0123456789abcdefABCDEF".utf8)
        for round in 0..<20_000 {
            var text = (0..<16).map { _ in alphabet.randomElement(using: &generator)! }
            if round % 2 == 1 {
                // One byte anywhere that is not a hex digit (or is, by chance).
                text[Int.random(in: 0..<16, using: &generator)] = UInt8.random(in: 0...255, using: &generator)
            }
            let parsed = text.withUnsafeBytes { HexDigits.value($0) }
            #expect(parsed == reference(text), "\(text)")
        }
    }

    @Test func edges() {
        let cases: [(String, UInt64?)] = [
            ("0000000000000000", 0), ("ffffffffffffffff", .max), ("FFFFFFFFFFFFFFFF", .max),
            ("0123456789abcdef", 0x0123_4567_89ab_cdef), ("463ac35c9f6413ad", 0x463a_c35c_9f64_13ad),
            ("463ac35c9f6413a/", nil), ("463ac35c9f6413a:", nil), ("463ac35c9f6413a@", nil),
            ("463ac35c9f6413aG", nil), ("463ac35c9f6413a`", nil), ("463ac35c9f6413ag", nil), ("\u{10}63ac35c9f6413ad", nil),
        ]
        for (text, expected) in cases {
            #expect(Array(text.utf8).withUnsafeBytes { HexDigits.value($0) } == expected, "\(text)")
        }
    }
}
