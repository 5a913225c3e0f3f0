package import SextantModel
package import SextantWire

/// Decodes Envoy metrics service messages (`envoy.service.metrics.v3.StreamMetricsMessage`): a list
/// of Prometheus client-model families, one stat each. Names are tag-extracted when the sink emits
/// tags as labels; otherwise `EnvoyTagExtractor` does it here, as for statsd.
/// API: https://www.envoyproxy.io/docs/envoy/latest/api-v3/service/metrics/v3/metrics_service.proto
package struct EnvoyMetricsServiceDecoder: Sendable {
    private let extractor: EnvoyTagExtractor

    package init(extractor: EnvoyTagExtractor = EnvoyTagExtractor()) {
        self.extractor = extractor
    }

    package func decode(
        _ message: Envoy_Service_Metrics_V3_StreamMetricsMessage, proxyLabels: [MetricLabelPair], nowMs: Int64
    ) -> IngestBatch {
        var batch = IngestBatch()
        // Envoy sends each histogram twice by default, as a summary too; summaries do not merge, so
        // the histogram wins when both are present.
        let histograms = Set(message.envoyMetrics.filter { $0.type == .histogram }.map(\.name))
        for (f, family) in message.envoyMetrics.enumerated() {
            if family.type == .summary, histograms.contains(family.name) { continue }
            let (stat, extracted) = family.metric.contains(where: { !$0.label.isEmpty })
                ? (family.name, []) : extractor.extract(family.name)
            let name = MetricNames.envoy(stat)
            for (m, metric) in family.metric.enumerated() {
                let labels = MetricNames.merge(
                    metric.label.map { MetricLabelPair(MetricNames.label($0.name), $0.value) }
                        + extracted.map { MetricLabelPair(MetricNames.label($0.name), $0.value) },
                    adding: proxyLabels)
                let ts = metric.timestampMs > 0 ? metric.timestampMs : nowMs
                switch family.type {
                case .counter:
                    batch.metrics.append(MetricPoint(name: name, kind: .counter, labels: labels, value: metric.counter.value, timestampMs: ts))
                case .gauge:
                    batch.metrics.append(MetricPoint(name: name, kind: .gauge, labels: labels, value: metric.gauge.value, timestampMs: ts))
                case .untyped:
                    batch.metrics.append(MetricPoint(name: name, kind: .untyped, labels: labels, value: metric.untyped.value, timestampMs: ts))
                case .histogram:
                    batch.metrics += PrometheusHistogram.points(
                        name: name, labels: labels, buckets: metric.histogram.bucket.map { ($0.upperBound, Double($0.cumulativeCount)) },
                        count: Double(metric.histogram.sampleCount), sum: metric.histogram.sampleSum, timestampMs: ts,
                        // Envoy sends the interval's values, not running totals.
                        temporality: .delta)
                case .summary:
                    // Quantiles of one flush interval: kept as gauges of the interval.
                    for q in metric.summary.quantile where q.value.isFinite {
                        batch.metrics.append(
                            MetricPoint(
                                name: name, family: name, kind: .summary,
                                labels: labels + [MetricLabelPair("quantile", StatsdDecoder.format(q.quantile))],
                                value: q.value, timestampMs: ts))
                    }
                default:
                    batch.rejected.append(
                        RecordError(location: "envoy_metrics[\(f)].metric[\(m)]", message: "unsupported metric type \(family.type)"))
                }
            }
        }
        return batch
    }
}

/// Classic histogram samples (`_bucket` with `le`, `_sum`, `_count`).
enum PrometheusHistogram {
    static func points(
        name: String, labels: [MetricLabelPair], buckets: [(upperBound: Double, cumulativeCount: Double)],
        count: Double, sum: Double, timestampMs: Int64, temporality: MetricPoint.Temporality
    ) -> [MetricPoint] {
        var points: [MetricPoint] = []
        for bucket in buckets where bucket.upperBound.isFinite {
            points.append(
                MetricPoint(
                    name: name + "_bucket", family: name, kind: .histogram,
                    labels: labels + [MetricLabelPair("le", StatsdDecoder.format(bucket.upperBound))],
                    value: bucket.cumulativeCount, timestampMs: timestampMs, temporality: temporality))
        }
        points.append(
            MetricPoint(
                name: name + "_bucket", family: name, kind: .histogram, labels: labels + [MetricLabelPair("le", "+Inf")],
                value: count, timestampMs: timestampMs, temporality: temporality))
        points.append(
            MetricPoint(
                name: name + "_sum", family: name, kind: .histogram, labels: labels, value: sum, timestampMs: timestampMs,
                temporality: temporality))
        points.append(
            MetricPoint(
                name: name + "_count", family: name, kind: .histogram, labels: labels, value: count,
                timestampMs: timestampMs, temporality: temporality))
        return points
    }
}
