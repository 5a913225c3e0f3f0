/// The metric samples of one commit, as one `metric_appends` row: the write-ahead record of the
/// head's samples until a flush writes them into per-series chunks and deletes the row.
///
/// Each sample carries what the head needs to be rebuilt from it at start: its series' row id, its
/// time and stored value, and for counters what accumulation keeps (the sender's raw value and the
/// offset added after its resets) when they differ from the plain case.
struct MetricAppend: Equatable {
    struct Sample: Equatable {
        var seriesID: Int64
        var timeMs: Int64
        var value: Double
        /// The sender's own value, when it is not `value` (a counter after a reset).
        var raw: Double
        /// What resets added to the sender's counts.
        var offset: Double
        /// A delta point: it always moves the series' newest sample.
        var isDelta: Bool
    }

    static let version: UInt8 = 1

    private enum Flag {
        static let raw: UInt8 = 1
        static let offset: UInt8 = 2
        static let delta: UInt8 = 4
    }

    var samples: [Sample] = []

    func encoded() -> [UInt8] {
        var body = ByteWriter()
        body.varint(UInt64(samples.count))
        var ids = ByteWriter()
        var times = ByteWriter()
        var values = ByteWriter()
        var flags = ByteWriter()
        var extra = ByteWriter()
        var previous = (id: Int64(0), time: Int64(0))
        for sample in samples {
            ids.varint(BlockFrame.zigzag(sample.seriesID &- previous.id))
            times.varint(BlockFrame.zigzag(sample.timeMs &- previous.time))
            previous = (sample.seriesID, sample.timeMs)
            values.fixed64(sample.value.bitPattern)
            var flag: UInt8 = sample.isDelta ? Flag.delta : 0
            if sample.raw.bitPattern != sample.value.bitPattern {
                flag |= Flag.raw
                extra.fixed64(sample.raw.bitPattern)
            }
            if sample.offset != 0 {
                flag |= Flag.offset
                extra.fixed64(sample.offset.bitPattern)
            }
            flags.byte(flag)
        }
        return BlockFrame.seal(version: Self.version, body: body, columns: [ids, times, values, flags, extra], level: 1)
    }

    static func decode(_ data: [UInt8]) throws(SpanBlock.FormatError) -> MetricAppend {
        let body = try BlockFrame.open(data, version: version, kind: "metric append")
        var reader = ByteReader(body[...])
        let count = Int(try reader.varint())
        guard count <= body.count else { throw SpanBlock.FormatError(description: "metric append count too large") }
        var ids = try reader.column()
        var times = try reader.column()
        var values = try reader.column()
        var flags = try reader.column()
        var extra = try reader.column()
        var out = MetricAppend()
        out.samples.reserveCapacity(count)
        var previous = (id: Int64(0), time: Int64(0))
        for _ in 0..<count {
            let id = previous.id &+ BlockFrame.unzigzag(try ids.varint())
            let time = previous.time &+ BlockFrame.unzigzag(try times.varint())
            previous = (id, time)
            let value = Double(bitPattern: try values.fixed64())
            let flag = try flags.byte()
            let raw = flag & Flag.raw != 0 ? Double(bitPattern: try extra.fixed64()) : value
            let offset = flag & Flag.offset != 0 ? Double(bitPattern: try extra.fixed64()) : 0
            out.samples.append(
                Sample(seriesID: id, timeMs: time, value: value, raw: raw, offset: offset, isDelta: flag & Flag.delta != 0))
        }
        return out
    }
}
