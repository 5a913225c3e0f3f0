internal import Foundation
package import SextantModel
package import SextantWire

/// Decodes OTLP metrics (`ExportMetricsServiceRequest`): sums (delta and cumulative), gauges,
/// explicit-bucket and exponential histograms, summaries.
///
/// Envoy's OpenTelemetry stats sink (resource `service.instance.id` = its node id) keeps Envoy's
/// names (`cluster.upstream_rq` → `envoy_cluster_upstream_rq`) and gets the proxy's identity
/// labels; other senders' names are made Prometheus-safe and monotonic sums gain `_total`.
package struct OTLPMetricsDecoder: Sendable {
    package init() {}

    package func decode(_ request: Opentelemetry_Proto_Collector_Metrics_V1_ExportMetricsServiceRequest, nowMs: Int64)
        -> IngestBatch
    {
        var batch = IngestBatch()
        for (r, resourceMetrics) in request.resourceMetrics.enumerated() {
            let resource = ResourceIdentity(resourceMetrics.resource)
            let node = resource.attributes["service.instance.id"].flatMap(NodeIdentity.init(nodeID:))
            let isEnvoy = node != nil && resource.attributes["telemetry.sdk.name"].map { $0 == "envoy" } != false
            let resourceLabels: [MetricLabelPair]
            if let node, isEnvoy {
                resourceLabels = MetricNames.proxyLabels(node.workload, pod: node.pod)
            } else {
                var labels = [MetricLabelPair("job", resource.service)]
                if let instance = resource.attributes["service.instance.id"] { labels.append(MetricLabelPair("instance", instance)) }
                let identity = resource.workload
                if identity.namespace != "unknown" { labels.append(MetricLabelPair("namespace", identity.namespace)) }
                resourceLabels = labels
            }
            for (s, scope) in resourceMetrics.scopeMetrics.enumerated() {
                for (m, metric) in scope.metrics.enumerated() {
                    let location = "resource_metrics[\(r)].scope_metrics[\(s)].metrics[\(m)]"
                    let base = isEnvoy ? MetricNames.envoy(metric.name) : MetricNames.sanitize(metric.name)
                    do throws(RecordError) {
                        batch.metrics += try points(metric, name: base, isEnvoy: isEnvoy, resourceLabels: resourceLabels, nowMs: nowMs, location: location)
                    } catch {
                        batch.rejected.append(error)
                    }
                }
            }
        }
        return batch
    }

    private func points(
        _ metric: Opentelemetry_Proto_Metrics_V1_Metric, name: String, isEnvoy: Bool, resourceLabels: [MetricLabelPair],
        nowMs: Int64, location: String
    ) throws(RecordError) -> [MetricPoint] {
        func labels(_ attributes: [Opentelemetry_Proto_Common_V1_KeyValue]) -> [MetricLabelPair] {
            MetricNames.merge(
                attributes.map { MetricLabelPair(MetricNames.label($0.key), $0.value.text) }, adding: resourceLabels)
        }
        func time(_ nanos: UInt64) -> Int64 { nanos > 0 ? Int64(nanos / 1_000_000) : nowMs }
        func temporality(_ t: Opentelemetry_Proto_Metrics_V1_AggregationTemporality) throws(RecordError)
            -> MetricPoint.Temporality
        {
            switch t {
            case .delta: return .delta
            case .cumulative: return .cumulative
            default: throw RecordError(location: location, message: "aggregation_temporality must be DELTA or CUMULATIVE")
            }
        }
        var out: [MetricPoint] = []
        switch metric.data {
        case .gauge(let gauge)?:
            for p in gauge.dataPoints {
                out.append(MetricPoint(name: name, kind: .gauge, labels: labels(p.attributes), value: p.number, timestampMs: time(p.timeUnixNano)))
            }
        case .sum(let sum)?:
            let t = try temporality(sum.aggregationTemporality)
            if sum.isMonotonic {
                let counterName = isEnvoy || name.hasSuffix("_total") ? name : name + "_total"
                for p in sum.dataPoints {
                    out.append(
                        MetricPoint(name: counterName, kind: .counter, labels: labels(p.attributes), value: p.number,
                            timestampMs: time(p.timeUnixNano), temporality: t))
                }
            } else {
                // A non-monotonic sum is a gauge once deltas are added up; only cumulative ones are kept as such.
                guard t == .cumulative else {
                    throw RecordError(location: location, message: "non-monotonic DELTA sums are not supported")
                }
                for p in sum.dataPoints {
                    out.append(MetricPoint(name: name, kind: .gauge, labels: labels(p.attributes), value: p.number, timestampMs: time(p.timeUnixNano)))
                }
            }
        case .histogram(let histogram)?:
            let t = try temporality(histogram.aggregationTemporality)
            for p in histogram.dataPoints {
                guard p.bucketCounts.isEmpty || p.bucketCounts.count == p.explicitBounds.count + 1 else {
                    throw RecordError(location: location, message: "bucket_counts must have one more entry than explicit_bounds")
                }
                var running = 0.0
                var buckets: [(Double, Double)] = []
                for (bound, n) in zip(p.explicitBounds, p.bucketCounts) {
                    running += Double(n)
                    buckets.append((bound, running))
                }
                out += PrometheusHistogram.points(
                    name: name, labels: labels(p.attributes), buckets: buckets, count: Double(p.count), sum: p.sum,
                    timestampMs: time(p.timeUnixNano), temporality: t)
            }
        case .exponentialHistogram(let histogram)?:
            let t = try temporality(histogram.aggregationTemporality)
            for p in histogram.dataPoints {
                // Exact classic buckets at the exponential bounds: (base^i, base^(i+1)] for positive values.
                guard (-10...20).contains(p.scale) else {
                    throw RecordError(location: location, message: "scale \(p.scale) is outside -10...20")
                }
                let base = pow(2.0, pow(2.0, -Double(p.scale)))
                // Added up as doubles: counts near UInt64.max would overflow as integers.
                var running = p.negative.bucketCounts.reduce(Double(p.zeroCount)) { $0 + Double($1) }
                var buckets: [(Double, Double)] = [(p.zeroThreshold, running)]
                for (k, n) in p.positive.bucketCounts.enumerated() {
                    running += Double(n)
                    buckets.append((pow(base, Double(Int(p.positive.offset) + k + 1)), running))
                }
                out += PrometheusHistogram.points(
                    name: name, labels: labels(p.attributes), buckets: buckets, count: Double(p.count), sum: p.sum,
                    timestampMs: time(p.timeUnixNano), temporality: t)
            }
        case .summary(let summary)?:
            for p in summary.dataPoints {
                let l = labels(p.attributes)
                let ts = time(p.timeUnixNano)
                for q in p.quantileValues {
                    out.append(
                        MetricPoint(name: name, kind: .summary, labels: l + [MetricLabelPair("quantile", StatsdDecoder.format(q.quantile))],
                            value: q.value, timestampMs: ts))
                }
                out.append(MetricPoint(name: name + "_sum", family: name, kind: .summary, labels: l, value: p.sum, timestampMs: ts))
                out.append(MetricPoint(name: name + "_count", family: name, kind: .summary, labels: l, value: Double(p.count), timestampMs: ts))
            }
        case nil:
            throw RecordError(location: location, message: "metric '\(metric.name.prefix(80))' has no data")
        }
        return out
    }
}

extension Opentelemetry_Proto_Metrics_V1_NumberDataPoint {
    var number: Double {
        switch value {
        case .asDouble(let d)?: d
        case .asInt(let i)?: Double(i)
        case nil: 0
        }
    }
}
