import SextantModel

/// The series one commit made, as one `metric_series_blocks` row: ids, kinds, names and label
/// sets, zstd-compressed together. A thousand Istio series, whose labels repeat most of each
/// other's strings, take a few dozen bytes each instead of a kilobyte of text and its index.
enum MetricSeriesBlock {
    static let version: UInt8 = 1

    static func encode(_ series: [MetricHead.NewSeries]) -> [UInt8] {
        var body = ByteWriter()
        body.varint(UInt64(series.count))
        var ids = ByteWriter()
        var kinds = ByteWriter()
        var names = ByteWriter()
        var labels = ByteWriter()
        var previous: Int64 = 0
        for s in series {
            ids.varint(BlockFrame.zigzag(s.id &- previous))
            previous = s.id
            kinds.byte(UInt8(s.kind.rawValue))
            names.string(s.key.name)
            // Most series are their own family: an empty family says so.
            names.string(s.family == s.key.name ? "" : s.family)
            labels.varint(UInt64(s.key.labels.count))
            for label in s.key.labels {
                labels.string(label.name)
                labels.string(label.value)
            }
        }
        return BlockFrame.seal(version: version, body: body, columns: [ids, kinds, names, labels], level: 3)
    }

    static func decode(_ data: [UInt8]) throws(SpanBlock.FormatError) -> [MetricHead.NewSeries] {
        let body = try BlockFrame.open(data, version: version, kind: "metric series")
        var reader = ByteReader(body[...])
        let count = Int(try reader.varint())
        guard count <= body.count else { throw SpanBlock.FormatError(description: "metric series count too large") }
        var ids = try reader.column()
        var kinds = try reader.column()
        var names = try reader.column()
        var labels = try reader.column()
        var out: [MetricHead.NewSeries] = []
        out.reserveCapacity(count)
        var previous: Int64 = 0
        for _ in 0..<count {
            let id = previous &+ BlockFrame.unzigzag(try ids.varint())
            previous = id
            let kind = MetricPoint.Kind(rawValue: Int(try kinds.byte())) ?? .untyped
            let name = try names.string()
            let family = try names.string()
            let labelCount = Int(try labels.varint())
            guard labelCount <= labels.remaining else { throw SpanBlock.FormatError(description: "metric series label count too large") }
            var pairs: [MetricLabelPair] = []
            pairs.reserveCapacity(labelCount)
            for _ in 0..<labelCount {
                let labelName = try labels.string()
                pairs.append(MetricLabelPair(labelName, try labels.string()))
            }
            out.append(
                MetricHead.NewSeries(
                    id: id, key: MetricSeriesKey(name: name, labels: pairs), family: family.isEmpty ? name : family, kind: kind))
        }
        return out
    }
}
