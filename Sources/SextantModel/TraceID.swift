/// A trace id: 128 bits (a 64-bit Zipkin id has a zero high half).
///
/// Kept as two integers so that decoding a span allocates nothing for its ids; `hex` is the
/// 32-digit lowercase text that Zipkin's API and the store use.
package struct TraceID: Sendable, Hashable, Comparable, CustomStringConvertible {
    package var high: UInt64
    package var low: UInt64

    package init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// 1 to 32 hex digits of either case, left-padded with zeros; nil for anything else.
    package init?(hex: some StringProtocol) {
        let parsed =
            hex.utf8.withContiguousStorageIfAvailable { TraceID(hexBytes: UnsafeRawBufferPointer($0)) }
            ?? Array(hex.utf8).withUnsafeBytes { TraceID(hexBytes: $0) }
        guard let parsed else { return nil }
        self = parsed
    }

    /// 1 to 32 hex digits of either case, left-padded with zeros; nil for anything else.
    package init?(hexBytes bytes: UnsafeRawBufferPointer) {
        guard !bytes.isEmpty, bytes.count <= 32 else { return nil }
        let split = max(0, bytes.count - 16)
        guard let high = HexDigits.value(UnsafeRawBufferPointer(rebasing: bytes[..<split])),
            let low = HexDigits.value(UnsafeRawBufferPointer(rebasing: bytes[split...]))
        else { return nil }
        self.init(high: high, low: low)
    }

    /// 16 bytes, or 8 for a 64-bit id, big-endian as on the wire (OTLP, Zipkin protobuf).
    package init?(bytes: some Collection<UInt8>) {
        guard bytes.count == 16 || bytes.count == 8 else { return nil }
        var high: UInt64 = 0
        var low: UInt64 = 0
        for (i, byte) in bytes.enumerated() {
            if bytes.count == 16, i < 8 {
                high = high << 8 | UInt64(byte)
            } else {
                low = low << 8 | UInt64(byte)
            }
        }
        self.init(high: high, low: low)
    }

    /// Whether every bit is zero (OTLP's "invalid" id).
    package var isZero: Bool { high == 0 && low == 0 }

    /// 32 lowercase hex digits.
    package var hex: String { HexDigits.text(high) + HexDigits.text(low) }

    package var description: String { hex }

    package static func < (lhs: TraceID, rhs: TraceID) -> Bool {
        (lhs.high, lhs.low) < (rhs.high, rhs.low)
    }
}

extension TraceID: ExpressibleByStringLiteral {
    /// A literal id in code and tests; it must be valid hex.
    package init(stringLiteral value: String) {
        guard let id = TraceID(hex: value) else { preconditionFailure("not a trace id: \(value)") }
        self = id
    }
}

/// A span id: 64 bits.
package struct SpanID: Sendable, Hashable, Comparable, CustomStringConvertible {
    package var value: UInt64

    package init(_ value: UInt64) {
        self.value = value
    }

    /// 1 to 16 hex digits of either case, left-padded with zeros; nil for anything else.
    package init?(hex: some StringProtocol) {
        let parsed =
            hex.utf8.withContiguousStorageIfAvailable { SpanID(hexBytes: UnsafeRawBufferPointer($0)) }
            ?? Array(hex.utf8).withUnsafeBytes { SpanID(hexBytes: $0) }
        guard let parsed else { return nil }
        self = parsed
    }

    /// 1 to 16 hex digits of either case; nil for anything else.
    package init?(hexBytes bytes: UnsafeRawBufferPointer) {
        guard !bytes.isEmpty, let value = HexDigits.value(bytes) else { return nil }
        self.value = value
    }

    /// 8 bytes, big-endian as on the wire.
    package init?(bytes: some Collection<UInt8>) {
        guard bytes.count == 8 else { return nil }
        value = bytes.reduce(0) { $0 << 8 | UInt64($1) }
    }

    package var isZero: Bool { value == 0 }

    /// 16 lowercase hex digits.
    package var hex: String { HexDigits.text(value) }

    package var description: String { hex }

    package static func < (lhs: SpanID, rhs: SpanID) -> Bool { lhs.value < rhs.value }
}

extension SpanID: ExpressibleByStringLiteral {
    /// A literal id in code and tests; it must be valid hex.
    package init(stringLiteral value: String) {
        guard let id = SpanID(hex: value) else { preconditionFailure("not a span id: \(value)") }
        self = id
    }
}

/// Hex text of 64-bit values, without Foundation.
package enum HexDigits {
    /// The value of up to 16 hex digits of either case; 0 for none; nil for a non-hex byte or more digits.
    package static func value(_ bytes: UnsafeRawBufferPointer) -> UInt64? {
        if bytes.count == 16 {
            // Ids are 16 digits: eight at a time.
            guard let high = eight(bytes.loadUnaligned(as: UInt64.self)),
                let low = eight(bytes.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
            else { return nil }
            return UInt64(high) << 32 | UInt64(low)
        }
        guard bytes.count <= 16 else { return nil }
        var value: UInt64 = 0
        for byte in bytes {
            let digit: UInt8
            switch byte {
            case 0x30...0x39: digit = byte &- 0x30
            case 0x61...0x66: digit = byte &- 0x57
            case 0x41...0x46: digit = byte &- 0x37
            default: return nil
            }
            value = value << 4 | UInt64(digit)
        }
        return value
    }

    /// The value of eight hex digits loaded as a little-endian word (the first digit in the low
    /// byte), checked and combined in parallel across its bytes; nil unless all eight are hex.
    @inline(__always)
    static func eight(_ word: UInt64) -> UInt32? {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        guard word & highs == 0 else { return nil }
        // With every byte below 0x80, b + (0x80 - lo) has its high bit set iff b >= lo, and
        // b + (0x7F - hi) iff b > hi; no byte carries into the next.
        func within(_ x: UInt64, _ lo: UInt64, _ hi: UInt64) -> UInt64 {
            (x &+ ones &* (0x80 - lo)) & ~(x &+ ones &* (0x7F - hi)) & highs
        }
        let digit = within(word, 0x30, 0x39)
        let letter = within(word | (ones &* 0x20), 0x61, 0x66)
        guard digit | letter == highs else { return nil }
        // A digit's low nibble is its value; a letter's (either case) is its value less 9.
        let nibbles = (word & (ones &* 0x0F)) &+ (letter >> 7) &* 9
        // Pack: byte pairs, then pairs of pairs, the first digit most significant.
        let bytes = (nibbles << 4 | nibbles >> 8) & 0x00FF_00FF_00FF_00FF
        let halves = (bytes << 8 | bytes >> 16) & 0x0000_FFFF_0000_FFFF
        return UInt32(truncatingIfNeeded: halves << 16 | halves >> 32)
    }

    /// 16 lowercase hex digits.
    package static func text(_ value: UInt64) -> String {
        String(unsafeUninitializedCapacity: 16) { buffer in
            write(value, into: UnsafeMutableRawBufferPointer(buffer))
            return 16
        }
    }

    /// Writes 16 lowercase hex digits into the first 16 bytes of `buffer`.
    package static func write(_ value: UInt64, into buffer: UnsafeMutableRawBufferPointer) {
        for i in 0..<16 {
            let nibble = UInt8(truncatingIfNeeded: value >> UInt64(60 - 4 * i)) & 0xF
            buffer[i] = nibble < 10 ? 0x30 + nibble : 0x57 + nibble
        }
    }
}
