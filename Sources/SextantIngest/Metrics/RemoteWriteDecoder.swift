internal import SwiftProtobuf
package import SextantModel
internal import SextantWire

/// Decodes a Prometheus remote-write 1.0 `WriteRequest` (already snappy-decoded).
/// Series keep their own labels; samples that break the spec are rejected one by one.
/// Spec: https://prometheus.io/docs/specs/prw/remote_write_spec/
package struct RemoteWriteDecoder: Sendable {
    package init() {}

    package func decode(protobuf body: [UInt8]) throws(DecodeError) -> IngestBatch {
        let request: Prometheus_WriteRequest
        do {
            request = try Prometheus_WriteRequest(serializedBytes: body)
        } catch {
            throw DecodeError(.malformed, "body is not a protobuf prometheus.WriteRequest")
        }
        var kinds: [String: MetricPoint.Kind] = [:]
        for metadata in request.metadata {
            switch metadata.type {
            case .counter: kinds[metadata.metricFamilyName] = .counter
            case .gauge: kinds[metadata.metricFamilyName] = .gauge
            case .histogram: kinds[metadata.metricFamilyName] = .histogram
            case .summary: kinds[metadata.metricFamilyName] = .summary
            default: break
            }
        }
        var batch = IngestBatch()
        for (index, series) in request.timeseries.enumerated() {
            guard let name = series.labels.first(where: { $0.name == "__name__" })?.value, !name.isEmpty else {
                batch.rejected.append(RecordError(location: "timeseries[\(index)]", message: "no __name__ label"))
                continue
            }
            let labels = series.labels.filter { $0.name != "__name__" }.map { MetricLabelPair($0.name, $0.value) }
            guard Set(labels.map(\.name)).count == labels.count, !labels.contains(where: { $0.name.isEmpty || $0.value.isEmpty }) else {
                batch.rejected.append(
                    RecordError(location: "timeseries[\(index)]", message: "labels of '\(name.prefix(80))' are duplicated or empty"))
                continue
            }
            let (family, kind) = Self.family(of: name, kinds: kinds)
            for sample in series.samples {
                // Staleness markers end a series; there is nothing to store.
                if sample.value.bitPattern == 0x7ff0_0000_0000_0002 { continue }
                batch.metrics.append(
                    MetricPoint(name: name, family: family, kind: kind, labels: labels, value: sample.value, timestampMs: sample.timestamp))
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
