import SextantModel
import SextantStore

/// Istio's families written straight into a `/metrics` body: each series' labels are escaped
/// once and copied into every line of it (a request series has 67), with no sample or label
/// value made per line. Byte for byte what `IstioMetrics.families` and `tcpFamilies` give through
/// `ExpositionEncoder` (the tests compare them).
enum IstioExposition {
    /// Appends Istio's families; `ingested` families of the same names (remote-written
    /// `istio_*` series) follow Istio's own samples in their family.
    static func append(
        _ totals: IstioTotals, merging ingested: [String: MetricFamily], format: ExpositionFormat, to out: inout [UInt8]
    ) {
        let requests = IstioMetrics.sorted(totals.requests, labels: IstioMetrics.labels).map { s, labels in
            (s, ExpositionEncoder.rendered(labels))
        }
        let connections = IstioMetrics.sorted(totals.connections, labels: IstioMetrics.tcpLabels).map { s, labels in
            (s, ExpositionEncoder.rendered(labels))
        }
        out.reserveCapacity(
            out.count + requests.reduce(0) { $0 + 67 * ($1.1.count + 60) }
                + connections.reduce(0) { $0 + 4 * ($1.1.count + 60) })
        let bounds = IstioHistogram.bounds.map { bound in
            Array(
                (format == .openMetrics
                    ? ExpositionEncoder.formatCanonicalFloat(bound) : ExpositionEncoder.formatFloat(bound)).utf8)
        }

        family(IstioMetrics.requests, hasOwn: !requests.isEmpty, ingested, format, &out) { out in
            for (s, labels) in requests {
                line(IstioMetrics.requests.name, labels, Double(s.count), &out)
            }
        }
        for (part, definition) in IstioMetrics.histograms.enumerated() {
            let bucketName = Array((definition.name + "_bucket").utf8)
            let sumName = definition.name + "_sum"
            let countName = definition.name + "_count"
            family(definition, hasOwn: !requests.isEmpty, ingested, format, &out) { out in
                for (s, labels) in requests {
                    let (buckets, sum) = IstioMetrics.histogramValues(s)[part]
                    for (bound, n) in zip(bounds, buckets) {
                        bucket(bucketName, labels, le: bound, Double(n), &out)
                    }
                    bucket(bucketName, labels, le: Array("+Inf".utf8), Double(s.count), &out)
                    line(sumName, labels, sum, &out)
                    line(countName, labels, Double(s.count), &out)
                }
            }
        }
        for (i, definition) in IstioMetrics.tcp.enumerated() {
            family(definition, hasOwn: !connections.isEmpty, ingested, format, &out) { out in
                for (s, labels) in connections {
                    line(definition.name, labels, IstioMetrics.tcpValues(s)[i], &out)
                }
            }
        }
    }

    /// A family's header and lines: Istio's own, then the ingested family's of the same name.
    private static func family(
        _ definition: IstioMetrics.Definition, hasOwn: Bool, _ ingested: [String: MetricFamily],
        _ format: ExpositionFormat, _ out: inout [UInt8], own: (inout [UInt8]) -> Void
    ) {
        let extra = ingested[definition.name].flatMap { $0.samples.isEmpty ? nil : $0 }
        guard hasOwn || extra != nil else { return }
        // Only a family's first sample decides its header, and Istio's come first.
        let first =
            !hasOwn ? extra!.samples[0].name : definition.type == .histogram ? definition.name + "_bucket" : definition.name
        let totalName = ExpositionEncoder.appendHeader(
            name: definition.name, type: definition.type, help: definition.help, firstSampleName: first, format: format,
            to: &out)
        if hasOwn { own(&out) }
        if let extra { ExpositionEncoder.appendSamples(of: extra, format: format, totalName: totalName, to: &out) }
    }

    private static func line(_ name: String, _ labels: [UInt8], _ value: Double, _ out: inout [UInt8]) {
        out.append(contentsOf: name.utf8)
        out.append(UInt8(ascii: "{"))
        out.append(contentsOf: labels)
        out.append(contentsOf: "} ".utf8)
        ExpositionEncoder.appendFloat(value, canonical: false, to: &out)
        out.append(UInt8(ascii: "\n"))
    }

    private static func bucket(_ name: [UInt8], _ labels: [UInt8], le: [UInt8], _ value: Double, _ out: inout [UInt8]) {
        out.append(contentsOf: name)
        out.append(UInt8(ascii: "{"))
        out.append(contentsOf: labels)
        out.append(contentsOf: ",le=\"".utf8)
        out.append(contentsOf: le)
        out.append(contentsOf: "\"} ".utf8)
        ExpositionEncoder.appendFloat(value, canonical: false, to: &out)
        out.append(UInt8(ascii: "\n"))
    }
}
