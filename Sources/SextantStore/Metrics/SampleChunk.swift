/// One series' samples in time order, compressed the way Prometheus's XOR chunks are (Gorilla,
/// Pelkonen et al. 2015): timestamps as deltas of deltas in variable-width buckets, values as the
/// XOR with the previous value, of which only the meaningful bits are written.
///
/// A counter that grows by a few requests between scrapes every 15 s takes one or two bytes a sample.
enum SampleChunk {
    /// Samples written one at a time, as they come (the head keeps one per series until a flush).
    /// Times may go back: a delta of deltas of any size has a bucket.
    struct Appender {
        private(set) var bits = BitWriter()
        private(set) var count = 0
        private var previousTime: Int64 = 0
        private var previousDelta: Int64 = 0
        private var previousValue: UInt64 = 0
        // The window of the last XOR written in full: leading zeros and meaningful bits.
        private var leading = 0
        private var meaningful = 0

        mutating func append(_ time: Int64, _ value: Double) {
            let valueBits = value.bitPattern
            switch count {
            case 0:
                bits.write(UInt64(bitPattern: time), width: 64)
                bits.write(valueBits, width: 64)
            default:
                let delta = time &- previousTime
                if count == 1 {
                    bits.write(BlockFrame.zigzag(delta), width: 64)
                } else {
                    SampleChunk.writeDeltaOfDelta(delta &- previousDelta, to: &bits)
                }
                previousDelta = delta
                let xor = valueBits ^ previousValue
                if xor == 0 {
                    bits.write(0, width: 1)
                } else {
                    // At most 31 leading zeros (five bits); trailing zeros make the window smaller.
                    let newLeading = min(xor.leadingZeroBitCount, 31)
                    let newTrailing = xor.trailingZeroBitCount
                    if meaningful > 0, newLeading >= leading, newTrailing >= 64 - leading - meaningful {
                        bits.write(0b10, width: 2)
                        bits.write(xor >> UInt64(64 - leading - meaningful), width: meaningful)
                    } else {
                        leading = newLeading
                        meaningful = 64 - newLeading - newTrailing
                        bits.write(0b11, width: 2)
                        bits.write(UInt64(leading), width: 5)
                        // 64 meaningful bits are written as 0 in six bits.
                        bits.write(UInt64(meaningful & 63), width: 6)
                        bits.write(xor >> UInt64(newTrailing), width: meaningful)
                    }
                }
            }
            previousTime = time
            previousValue = valueBits
            count += 1
        }

        /// The samples appended, in the order they came.
        func samples() -> [(Int64, Double)] {
            // Written here, so well formed.
            (try? SampleChunk.decode(stream: bits.bytes, startingAt: 0, count: count)) ?? []
        }
    }

    /// Encodes samples, which must be in increasing time order (equal times are kept as they come):
    /// their count in 32 bits, then the stream an `Appender` writes.
    static func encode(_ samples: some Collection<(Int64, Double)>) -> [UInt8] {
        var appender = Appender()
        for (time, value) in samples { appender.append(time, value) }
        var header = BitWriter()
        header.write(UInt64(samples.count), width: 32)
        return header.bytes + appender.bits.bytes
    }

    /// The delta of deltas in the smallest bucket that holds it: 0; 14, 17 or 20 bits; or 64.
    fileprivate static func writeDeltaOfDelta(_ dod: Int64, to bits: inout BitWriter) {
        switch dod {
        case 0:
            bits.write(0, width: 1)
        case -8191...8192:
            bits.write(0b10, width: 2)
            bits.write(UInt64(bitPattern: dod) & 0x3FFF, width: 14)
        case -65535...65536:
            bits.write(0b110, width: 3)
            bits.write(UInt64(bitPattern: dod) & 0x1FFFF, width: 17)
        case -524287...524288:
            bits.write(0b1110, width: 4)
            bits.write(UInt64(bitPattern: dod) & 0xFFFFF, width: 20)
        default:
            bits.write(0b1111, width: 4)
            bits.write(UInt64(bitPattern: dod), width: 64)
        }
    }

    /// The samples of an encoded chunk, in the order they were encoded.
    static func decode(_ bytes: [UInt8]) throws(SpanBlock.FormatError) -> [(Int64, Double)] {
        var header = BitReader(bytes)
        let count = Int(try header.read(32))
        return try decode(stream: bytes, startingAt: 32, count: count)
    }

    /// `count` samples of the stream that starts at bit `start`.
    static func decode(stream bytes: [UInt8], startingAt start: Int, count: Int) throws(SpanBlock.FormatError) -> [(Int64, Double)] {
        var bits = BitReader(bytes, bit: start)
        guard count <= bytes.count * 8 else { throw SpanBlock.FormatError(description: "sample chunk count too large") }
        var out: [(Int64, Double)] = []
        out.reserveCapacity(count)
        var time: Int64 = 0
        var delta: Int64 = 0
        var value: UInt64 = 0
        var leading = 0
        var meaningful = 0
        for position in 0..<count {
            if position == 0 {
                time = Int64(bitPattern: try bits.read(64))
                value = try bits.read(64)
                out.append((time, Double(bitPattern: value)))
                continue
            }
            if position == 1 {
                delta = BlockFrame.unzigzag(try bits.read(64))
            } else {
                delta &+= try readDeltaOfDelta(&bits)
            }
            time &+= delta
            if try bits.read(1) == 1 {
                if try bits.read(1) == 1 {
                    leading = Int(try bits.read(5))
                    meaningful = Int(try bits.read(6))
                    if meaningful == 0 { meaningful = 64 }
                    guard leading + meaningful <= 64 else {
                        throw SpanBlock.FormatError(description: "sample chunk value window past 64 bits")
                    }
                } else if meaningful == 0 {
                    throw SpanBlock.FormatError(description: "sample chunk reuses a window it never set")
                }
                value ^= try bits.read(meaningful) << UInt64(64 - leading - meaningful)
            }
            out.append((time, Double(bitPattern: value)))
        }
        return out
    }

    private static func readDeltaOfDelta(_ bits: inout BitReader) throws(SpanBlock.FormatError) -> Int64 {
        var prefix = 0
        while prefix < 4, try bits.read(1) == 1 { prefix += 1 }
        let width: Int
        switch prefix {
        case 0: return 0
        case 1: width = 14
        case 2: width = 17
        case 3: width = 20
        default: return Int64(bitPattern: try bits.read(64))
        }
        let raw = try bits.read(width)
        // Sign-extend from `width` bits.
        let shift = UInt64(64 - width)
        return Int64(bitPattern: raw << shift) >> Int64(shift)
    }
}

/// Bits written most significant first into bytes.
struct BitWriter {
    private(set) var bytes: [UInt8] = []
    /// Bits still free in the last byte.
    private var free = 0

    mutating func write(_ value: UInt64, width: Int) {
        var remaining = width
        while remaining > 0 {
            if free == 0 {
                bytes.append(0)
                free = 8
            }
            let take = min(free, remaining)
            let chunk = UInt8(truncatingIfNeeded: (value >> UInt64(remaining - take)) & ((1 << UInt64(take)) - 1))
            bytes[bytes.count - 1] |= chunk << UInt8(free - take)
            free -= take
            remaining -= take
        }
    }
}

/// Reads what `BitWriter` wrote.
struct BitReader {
    private let bytes: [UInt8]
    private var position = 0

    init(_ bytes: [UInt8], bit: Int = 0) {
        self.bytes = bytes
        position = bit
    }

    mutating func read(_ width: Int) throws(SpanBlock.FormatError) -> UInt64 {
        guard position + width <= bytes.count * 8 else { throw SpanBlock.FormatError(description: "sample chunk ends early") }
        var value: UInt64 = 0
        var remaining = width
        while remaining > 0 {
            let byte = bytes[position >> 3]
            let offset = position & 7
            let take = min(8 - offset, remaining)
            let chunk = (UInt64(byte) >> UInt64(8 - offset - take)) & ((1 << UInt64(take)) - 1)
            value = (value << UInt64(take)) | chunk
            position += take
            remaining -= take
        }
        return value
    }
}
