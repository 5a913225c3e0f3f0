#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
package import SextantModel

/// Decodes a Prometheus remote-write 1.0 `WriteRequest` (already snappy-decoded).
///
/// Reads the wire format itself (`ProtobufReader`): label names and values are interned from their
/// bytes, so the thousands of labels of a request make a few hundred strings, and a series' labels,
/// which the spec sorts by name, are checked in one pass. Series keep their own labels; series
/// that break the spec are rejected one by one.
/// Spec: https://prometheus.io/docs/specs/prw/remote_write_spec/
package struct RemoteWriteDecoder: Sendable {
    package init() {}

    static let messageName = "prometheus.WriteRequest"
    private static func isNameLabel(_ bytes: UnsafeRawBufferPointer) -> Bool {
        let name: StaticString = "__name__"
        return bytes.count == 8 && memcmp(bytes.baseAddress!, name.utf8Start, 8) == 0
    }

    /// Whether bytes `a` sort strictly before `b` (an empty `a`, no label yet, before anything).
    private static func precedes(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        guard !a.isEmpty else { return true }
        let common = min(a.count, b.count)
        let order = common == 0 ? 0 : memcmp(a.baseAddress!, b.baseAddress!, common)
        return order != 0 ? order < 0 : a.count < b.count
    }

    /// Staleness markers end a series; there is nothing to store.
    static let staleNaNBits: UInt64 = 0x7ff0_0000_0000_0002

    package func decode(protobuf body: [UInt8]) throws(DecodeError) -> IngestBatch {
        var result: Result<IngestBatch, DecodeError> = .success(IngestBatch())
        body.withUnsafeBytes { bytes in
            do throws(ProtobufReader.WireError) {
                result = .success(try Self.decode(bytes))
            } catch {
                result = .failure(DecodeError(.malformed, "body is not a protobuf \(Self.messageName): \(error)"))
            }
        }
        return try result.get()
    }

    private static func decode(_ body: UnsafeRawBufferPointer) throws(ProtobufReader.WireError) -> IngestBatch {
        let strings = InternTable(capacity: 8192)
        // Metadata (field 3) may follow the series: read it first.
        var kinds: [String: MetricPoint.Kind] = [:]
        var pass = ProtobufReader(body)
        while let field = try pass.next() {
            guard field.number == 3, field.wireType == .lengthDelimited else {
                try pass.skip(field)
                continue
            }
            var metadata = try pass.message()
            var type: UInt64 = 0
            var family: String?
            while let f = try metadata.next() {
                switch (f.number, f.wireType) {
                case (1, .varint): type = try metadata.varint()
                case (2, .lengthDelimited): family = strings.string(try metadata.string())
                // Help and unit are not kept, but must be text as in any string field.
                case (4, .lengthDelimited), (5, .lengthDelimited): _ = try metadata.string()
                default: try metadata.skip(f)
                }
            }
            // MetricType: 1 counter, 2 gauge, 3 histogram, 4 gaugehistogram, 5 summary.
            let kind: MetricPoint.Kind? =
                switch type {
                case 1: .counter
                case 2: .gauge
                case 3: .histogram
                case 5: .summary
                default: nil
                }
            if let family, let kind { kinds[family] = kind }
        }

        var batch = IngestBatch()
        var reader = ProtobufReader(body)
        var index = 0
        var labels: [MetricLabelPair] = []
        var samples: [(value: Double, timestamp: Int64)] = []
        while let field = try reader.next() {
            guard field.number == 1, field.wireType == .lengthDelimited else {
                try reader.skip(field)
                continue
            }
            defer { index += 1 }
            var series = try reader.message()
            labels.removeAll(keepingCapacity: true)
            samples.removeAll(keepingCapacity: true)
            var name: String?
            var problem: String?
            var previous = UnsafeRawBufferPointer(start: nil, count: 0)
            var unsorted = false
            while let f = try series.next() {
                switch (f.number, f.wireType) {
                case (1, .lengthDelimited):
                    var label = try series.message()
                    var nameBytes = UnsafeRawBufferPointer(start: nil, count: 0)
                    var valueBytes = UnsafeRawBufferPointer(start: nil, count: 0)
                    while let g = try label.next() {
                        switch (g.number, g.wireType) {
                        case (1, .lengthDelimited): nameBytes = try label.string()
                        case (2, .lengthDelimited): valueBytes = try label.string()
                        default: try label.skip(g)
                        }
                    }
                    if Self.isNameLabel(nameBytes) {
                        if name == nil { name = strings.string(valueBytes) }
                    } else if nameBytes.isEmpty || valueBytes.isEmpty {
                        problem = "duplicated or empty"
                    } else {
                        // The spec sorts labels by name: a name after the last one cannot repeat it.
                        let n = strings.string(nameBytes)
                        if !Self.precedes(previous, nameBytes) {
                            unsorted = true
                            if labels.contains(where: { $0.name == n }) { problem = "duplicated or empty" }
                        }
                        previous = nameBytes
                        labels.append(MetricLabelPair(n, strings.string(valueBytes)))
                    }
                case (2, .lengthDelimited):
                    var sample = try series.message()
                    var value = 0.0
                    var timestamp: Int64 = 0
                    while let g = try sample.next() {
                        switch (g.number, g.wireType) {
                        case (1, .fixed64): value = Double(bitPattern: try sample.fixed64())
                        case (2, .varint): timestamp = Int64(bitPattern: try sample.varint())
                        default: try sample.skip(g)
                        }
                    }
                    samples.append((value, timestamp))
                default:
                    try series.skip(f)
                }
            }
            guard let name, !name.isEmpty else {
                batch.rejected.append(RecordError(location: "timeseries[\(index)]", message: "no __name__ label"))
                continue
            }
            if let problem {
                batch.rejected.append(
                    RecordError(location: "timeseries[\(index)]", message: "labels of '\(name.prefix(80))' are \(problem)"))
                continue
            }
            let (family, kind) = Self.family(of: name, kinds: kinds)
            // Labels in byte order, each once, as the spec asks: nothing for MetricPoint to sort.
            let canonical = !unsorted
            for sample in samples where sample.value.bitPattern != staleNaNBits {
                batch.metrics.append(
                    MetricPoint(
                        name: name, family: family, kind: kind, labels: labels, value: sample.value, timestampMs: sample.timestamp,
                        labelsAreCanonical: canonical))
            }
        }
        return batch
    }

    /// The family and kind of a sample name, from the request's metadata or Prometheus' suffixes.
    static func family(of name: String, kinds: [String: MetricPoint.Kind]) -> (String, MetricPoint.Kind) {
        if let kind = kinds[name] { return (name, kind) }
        for suffix in ["_bucket", "_sum", "_count"] where name.hasSuffix(suffix) {
            let base = String(name.dropLast(suffix.count))
            if let kind = kinds[base], kind == .histogram || kind == .summary { return (base, kind) }
        }
        if name.hasSuffix("_total") { return (name, .counter) }
        return (name, .untyped)
    }
}
