/// A request body built once, with the places that make each copy unique: ids and times.
///
/// Every id is made new for each round, whole: each 64-bit word of an id (16 hex digits of a
/// text id, 8 bytes of a binary one, the 30 free digits of a UUID) becomes a bijective mix of
/// itself and the round's nonce. So a round's ids are as random as a proxy's, stored blocks get
/// no help from ids that share digits, and the two halves of a call, sent by different sidecars
/// in the same round, still share theirs. Times are written relative to a base chosen per send.
/// A copy costs one memcpy and a few writes per record.
package struct BodyTemplate: Sendable {
    package enum Patch: Sendable, Hashable {
        /// 16 lowercase hex digits: one word of a trace or span id.
        case hexWord(offset: Int)
        /// 8 bytes: one word of a binary trace or span id.
        case binaryWord(offset: Int)
        /// A 36-character UUID `x-request-id` (its version and variant digits kept).
        case uuid(offset: Int)
        /// A 16-digit decimal count of microseconds since the epoch: base + relative.
        case decimalMicros(offset: Int, relative: Int64)
        /// `YYYY-MM-DDTHH:MM:SS.mmmZ` (24 bytes): base + relative microseconds.
        case isoMillis(offset: Int, relative: Int64)
        /// A little-endian fixed64 of nanoseconds since the epoch: base + relative.
        case fixed64Nanos(offset: Int, relative: Int64)
        /// A 5-byte varint of seconds since the epoch: base + relative seconds.
        case varintSeconds(offset: Int, relative: Int64)
    }

    package var body: [UInt8]
    package var patches: [Patch]
    /// Records in the body.
    package var records: Int
    /// The path and query of an HTTP request (or the sidecar's node id for a gRPC one).
    package var target: String

    package init(body: [UInt8], patches: [Patch], records: Int, target: String) {
        self.body = body
        self.patches = patches
        self.records = records
        self.target = target
    }

    /// The body with ids made new for `nonce` and times moved to `baseMicros` (+ their relative offsets).
    package func render(nonce: UInt32, baseMicros: Int64) -> [UInt8] {
        var out = body
        out.withUnsafeMutableBufferPointer { buffer in
            for patch in patches {
                switch patch {
                case .hexWord(let offset):
                    Self.writeHex(Self.fresh(Self.readHex(buffer, offset, digits: 16), nonce: nonce), into: buffer, offset, digits: 16)
                case .binaryWord(let offset):
                    var word: UInt64 = 0
                    for i in 0..<8 { word = word << 8 | UInt64(buffer[offset + i]) }
                    word = Self.fresh(word, nonce: nonce)
                    for i in 0..<8 { buffer[offset + i] = UInt8(truncatingIfNeeded: word >> (56 - 8 * UInt64(i))) }
                case .uuid(let offset):
                    Self.renewUUID(buffer, offset, nonce: nonce)
                case .decimalMicros(let offset, let relative):
                    var value = baseMicros + relative
                    for i in stride(from: 15, through: 0, by: -1) {
                        buffer[offset + i] = UInt8(ascii: "0") + UInt8(value % 10)
                        value /= 10
                    }
                case .isoMillis(let offset, let relative):
                    Self.writeISO(micros: baseMicros + relative, into: buffer, at: offset)
                case .fixed64Nanos(let offset, let relative):
                    let value = UInt64(baseMicros * 1000 + relative)
                    for i in 0..<8 { buffer[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))) }
                case .varintSeconds(let offset, let relative):
                    var value = UInt64(baseMicros / 1_000_000 + relative)
                    for i in 0..<5 {
                        buffer[offset + i] = UInt8(truncatingIfNeeded: value & 0x7F) | (i < 4 ? 0x80 : 0)
                        value >>= 7
                    }
                }
            }
        }
        return out
    }

    // MARK: - Finding the places in a built body

    /// The base time every template is built with: 1e15 µs since the epoch (2001-09-09T01:46:40Z);
    /// template times are this plus less than `maxRelativeMicros`.
    package static let templateBaseMicros: Int64 = 1_000_000_000_000_000
    package static let maxRelativeMicros: Int64 = 100_000_000

    /// Every place in `body` holding one of the ids (text ids: hex of 16 or 32 digits, or a UUID;
    /// binary ids: 8 or 16 bytes) and, for the given time encodings, every template time.
    /// - Throws: `TemplateError` when an id is missing, has another shape, or places overlap.
    package static func findPatches(
        in body: [UInt8], textIDs: [String], binaryIDs: [[UInt8]], times: Set<TimeEncoding>
    ) throws(TemplateError) -> [Patch] {
        var patches: [(Int, Int, Patch)] = []  // (start, length, patch)
        for id in textIDs {
            let bytes = Array(id.utf8)
            let hits = occurrences(of: bytes, in: body)
            guard !hits.isEmpty else { throw TemplateError("id \(id) not found in the body") }
            if bytes.count == 36, uuidDashes.allSatisfy({ bytes[$0] == UInt8(ascii: "-") }) {
                for start in hits { patches.append((start, 36, .uuid(offset: start))) }
            } else {
                guard bytes.count == 16 || bytes.count == 32 else { throw TemplateError("id \(id) is not 16 or 32 hex digits") }
                for start in hits {
                    for word in stride(from: 0, to: bytes.count, by: 16) {
                        patches.append((start + word, 16, .hexWord(offset: start + word)))
                    }
                }
            }
        }
        for id in binaryIDs {
            let hits = occurrences(of: id, in: body)
            guard !hits.isEmpty else { throw TemplateError("a binary id was not found in the body") }
            guard id.count == 8 || id.count == 16 else { throw TemplateError("a binary id is not 8 or 16 bytes") }
            for start in hits {
                for word in stride(from: 0, to: id.count, by: 8) {
                    patches.append((start + word, 8, .binaryWord(offset: start + word)))
                }
            }
        }
        for encoding in times { patches += timePlaces(encoding, in: body) }
        patches.sort { $0.0 < $1.0 }
        // An id listed twice (a root span's id may be its trace id's low half) is one place.
        var distinct: [(Int, Int, Patch)] = []
        for patch in patches where distinct.last.map({ $0.0 != patch.0 || $0.1 != patch.1 }) ?? true {
            distinct.append(patch)
        }
        patches = distinct
        for (a, b) in zip(patches, patches.dropFirst()) where a.0 + a.1 > b.0 {
            throw TemplateError("places at \(a.0) and \(b.0) overlap")
        }
        return patches.map(\.2)
    }

    package enum TimeEncoding: Sendable, Hashable {
        case decimalMicros, isoMillis, fixed64Nanos, varintSeconds
    }

    private static func timePlaces(_ encoding: TimeEncoding, in body: [UInt8]) -> [(Int, Int, Patch)] {
        var out: [(Int, Int, Patch)] = []
        let base = templateBaseMicros
        switch encoding {
        case .decimalMicros:
            // 16 digits "10000000dddddddd" not inside a longer run of digits.
            let prefix = Array("10000000".utf8)
            for start in occurrences(of: prefix, in: body) where start + 16 <= body.count {
                if start > 0, isDigit(body[start - 1]) { continue }
                if start + 16 < body.count, isDigit(body[start + 16]) { continue }
                var value: Int64 = 0
                var digits = true
                for i in 0..<16 {
                    guard isDigit(body[start + i]) else { digits = false; break }
                    value = value * 10 + Int64(body[start + i] - UInt8(ascii: "0"))
                }
                if digits { out.append((start, 16, .decimalMicros(offset: start, relative: value - base))) }
            }
        case .isoMillis:
            for start in occurrences(of: Array("2001-09-09T01:4".utf8), in: body) where start + 24 <= body.count {
                if let micros = parseISO(Array(body[start..<start + 24])) {
                    out.append((start, 24, .isoMillis(offset: start, relative: micros - base)))
                }
            }
        case .fixed64Nanos:
            let low = UInt64(base) * 1000
            let high = low + UInt64(maxRelativeMicros) * 1000
            var i = 1
            while i + 8 <= body.count {
                // field 7 or 8 (start/end time of an OTLP span), wire type 1
                if body[i - 1] == 0x39 || body[i - 1] == 0x41 {
                    var value: UInt64 = 0
                    for k in 0..<8 { value |= UInt64(body[i + k]) << (8 * UInt64(k)) }
                    if value >= low, value < high {
                        out.append((i, 8, .fixed64Nanos(offset: i, relative: Int64(value - low))))
                        i += 8
                        continue
                    }
                }
                i += 1
            }
        case .varintSeconds:
            let low = UInt64(base / 1_000_000)
            var i = 1
            while i + 5 <= body.count {
                // field 1 (google.protobuf.Timestamp.seconds), a 5-byte varint
                if body[i - 1] == 0x08, body[i..<i + 4].allSatisfy({ $0 & 0x80 != 0 }), body[i + 4] & 0x80 == 0 {
                    var value: UInt64 = 0
                    for k in 0..<5 { value |= UInt64(body[i + k] & 0x7F) << (7 * UInt64(k)) }
                    if value >= low, value < low + UInt64(maxRelativeMicros / 1_000_000) {
                        out.append((i, 5, .varintSeconds(offset: i, relative: Int64(value - low))))
                        i += 5
                        continue
                    }
                }
                i += 1
            }
        }
        return out
    }

    // MARK: - Helpers

    /// The lowercase hex digit of `nibble` (0–15), computed: a table in a static array would be
    /// a lazy global, checked on every one of a body's thousands of digits.
    private static func hexDigit(_ nibble: UInt64) -> UInt8 {
        let n = UInt8(truncatingIfNeeded: nibble & 0xF)
        return n < 10 ? UInt8(ascii: "0") + n : UInt8(ascii: "a") - 10 + n
    }

    private static func hexValue(_ c: UInt8) -> UInt8 {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: 0
        }
    }

    /// A bijective mix of `word` and the round's nonce (SplitMix64's finaliser).
    static func fresh(_ word: UInt64, nonce: UInt32) -> UInt64 {
        var z = word &+ UInt64(nonce) &* 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    private static func readHex(_ buffer: UnsafeMutableBufferPointer<UInt8>, _ offset: Int, digits: Int) -> UInt64 {
        var word: UInt64 = 0
        for i in 0..<digits { word = word << 4 | UInt64(hexValue(buffer[offset + i])) }
        return word
    }

    private static func writeHex(_ word: UInt64, into buffer: UnsafeMutableBufferPointer<UInt8>, _ offset: Int, digits: Int) {
        for i in 0..<digits { buffer[offset + i] = hexDigit(word >> UInt64(4 * (digits - 1 - i))) }
    }

    private static let uuidDashes = [8, 13, 18, 23]

    /// The place in a UUID of digit `k` (0–15) of its first or second word: the first word is
    /// digits 0–7, 9–12 and 14–17, the second 19–22 and 24–35.
    private static func uuidPlace(half: Int, _ k: Int) -> Int {
        half == 0 ? (k < 8 ? k : k < 12 ? k + 1 : k + 2) : (k < 4 ? 19 + k : 20 + k)
    }

    /// Renews the 32 digits of a UUID at `offset` as two words, keeping its dashes and its
    /// version (14) and variant (19) characters.
    private static func renewUUID(_ buffer: UnsafeMutableBufferPointer<UInt8>, _ offset: Int, nonce: UInt32) {
        for half in 0..<2 {
            var word: UInt64 = 0
            for k in 0..<16 { word = word << 4 | UInt64(hexValue(buffer[offset + uuidPlace(half: half, k)])) }
            word = fresh(word, nonce: nonce)
            for k in 0..<16 {
                let place = uuidPlace(half: half, k)
                if place != 14 && place != 19 { buffer[offset + place] = hexDigit(word >> UInt64(4 * (15 - k))) }
            }
        }
    }

    private static func isDigit(_ c: UInt8) -> Bool { c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") }

    /// Start offsets of every occurrence of `needle` in `haystack`.
    package static func occurrences(of needle: [UInt8], in haystack: [UInt8]) -> [Int] {
        guard !needle.isEmpty, needle.count <= haystack.count else { return [] }
        var hits: [Int] = []
        let first = needle[0]
        var i = 0
        let last = haystack.count - needle.count
        while i <= last {
            if haystack[i] == first, haystack[i..<i + needle.count].elementsEqual(needle) {
                hits.append(i)
                i += needle.count
            } else {
                i += 1
            }
        }
        return hits
    }

    /// Writes `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC) for a count of microseconds since the epoch.
    package static func writeISO(micros: Int64, into buffer: UnsafeMutableBufferPointer<UInt8>, at offset: Int) {
        let seconds = micros / 1_000_000
        let millis = Int((micros % 1_000_000) / 1000)
        let (days, secondOfDay) = seconds.quotientAndRemainder(dividingBy: 86_400)
        let (year, month, day) = civil(fromDays: Int(days))
        let fields = [
            (year, 4), (month, 2), (day, 2), (Int(secondOfDay / 3600), 2), (Int(secondOfDay % 3600 / 60), 2),
            (Int(secondOfDay % 60), 2), (millis, 3),
        ]
        let separators: [UInt8] = Array("--T::.Z".utf8)
        var at = offset
        for (index, (value, width)) in fields.enumerated() {
            var v = value
            for k in stride(from: width - 1, through: 0, by: -1) {
                buffer[at + k] = UInt8(ascii: "0") + UInt8(v % 10)
                v /= 10
            }
            at += width
            buffer[at] = separators[index]
            at += 1
        }
    }

    /// The ISO text of a count of microseconds (millisecond precision).
    package static func iso(micros: Int64) -> String {
        var bytes = [UInt8](repeating: 0, count: 24)
        bytes.withUnsafeMutableBufferPointer { writeISO(micros: micros, into: $0, at: 0) }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Microseconds since the epoch of `YYYY-MM-DDTHH:MM:SS.mmmZ`, or nil.
    package static func parseISO(_ text: [UInt8]) -> Int64? {
        guard text.count == 24 else { return nil }
        func number(_ range: Range<Int>) -> Int? {
            var v = 0
            for i in range {
                guard isDigit(text[i]) else { return nil }
                v = v * 10 + Int(text[i] - UInt8(ascii: "0"))
            }
            return v
        }
        guard let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
            let hour = number(11..<13), let minute = number(14..<16), let second = number(17..<19),
            let millis = number(20..<23)
        else { return nil }
        let days = Int64(days(fromCivil: year, month, day))
        return ((days * 86_400 + Int64(hour * 3600 + minute * 60 + second)) * 1000 + Int64(millis)) * 1000
    }

    // Howard Hinnant's civil-date algorithms (days since 1970-01-01, proleptic Gregorian).
    private static func civil(fromDays z0: Int) -> (Int, Int, Int) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    private static func days(fromCivil y0: Int, _ month: Int, _ day: Int) -> Int {
        let y = month <= 2 ? y0 - 1 : y0
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }
}

/// A template that cannot be built as asked.
package struct TemplateError: Error, CustomStringConvertible {
    package var description: String
    package init(_ description: String) { self.description = description }
}
