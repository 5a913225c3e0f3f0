/// Parses the RFC 3339 timestamps Envoy writes (`2026-11-26T15:27:30.714Z`, optional offset).
package enum Timestamp {
    /// Microseconds since the Unix epoch, or nil when the text is not an RFC 3339 date-time.
    package static func micros(rfc3339 text: String) -> Int64? {
        var text = text
        return text.withUTF8 { micros(rfc3339: UnsafeRawBufferPointer($0)) }
    }

    /// Microseconds since the Unix epoch from the text's UTF-8 bytes, or nil when it is not an
    /// RFC 3339 date-time.
    package static func micros(rfc3339 b: UnsafeRawBufferPointer) -> Int64? {
        guard b.count >= 19 else { return nil }
        func digits(_ from: Int, _ count: Int) -> Int? {
            var v = 0
            for i in from..<(from + count) {
                let c = b[i]
                guard c >= 48 && c <= 57 else { return nil }
                v = v * 10 + Int(c - 48)
            }
            return v
        }
        guard let year = digits(0, 4), b[4] == 45, let month = digits(5, 2), b[7] == 45,
            let day = digits(8, 2), b[10] == 84 || b[10] == 116 || b[10] == 32,
            let hour = digits(11, 2), b[13] == 58, let minute = digits(14, 2), b[16] == 58,
            let second = digits(17, 2), (1...12).contains(month), (1...31).contains(day), hour < 24,
            minute < 60, second <= 60
        else { return nil }
        var i = 19
        var fraction: Int64 = 0
        if i < b.count, b[i] == 46 {
            i += 1
            var scale: Int64 = 100_000
            let start = i
            while i < b.count, b[i] >= 48, b[i] <= 57 {
                if scale > 0 {
                    fraction += Int64(b[i] - 48) * scale
                    scale /= 10
                }
                i += 1
            }
            guard i > start else { return nil }
        }
        var offsetSeconds = 0
        if i < b.count {
            switch b[i] {
            case 90, 122: i += 1
            case 43, 45:
                guard i + 6 <= b.count, let oh = digits(i + 1, 2), b[i + 3] == 58, let om = digits(i + 4, 2)
                else { return nil }
                offsetSeconds = (oh * 3600 + om * 60) * (b[i] == 43 ? 1 : -1)
                i += 6
            default: return nil
            }
        }
        guard i == b.count else { return nil }
        let days = daysFromCivil(year: year, month: month, day: day)
        let seconds = Int64(days) * 86_400 + Int64(hour * 3600 + minute * 60 + second - offsetSeconds)
        return seconds * 1_000_000 + fraction
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
    private static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }
}
