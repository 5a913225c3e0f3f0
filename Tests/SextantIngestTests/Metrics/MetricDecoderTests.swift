import CSnappy
import Foundation
import SextantFixtures
import SextantIngest
import SextantModel
import SextantWire
import SwiftProtobuf
import Testing

private func total(_ points: [MetricPoint], _ name: String, _ labels: [String: String]) -> Double {
    points.filter { p in
        p.name == name && labels.allSatisfy { key, value in p.labels.contains(MetricLabelPair(key, value)) }
    }.reduce(0) { $0 + $1.value }
}

@Suite struct StatsdDecoderTests {
    @Test func extractsEnvoyTagsSoSeriesMatchStatsPrometheus() throws {
        let lines = try Fixtures.bytes("envoy/statsd/productpage-v1.txt")
        let batch = StatsdDecoder().decode(datagram: lines, sender: [MetricLabelPair("instance", "127.0.0.1")], timestampMs: 1)
        #expect(batch.rejected.isEmpty, "\(batch.rejected.prefix(3))")
        // /stats/prometheus of the same sidecar says 49.
        #expect(total(batch.metrics, "envoy_cluster_upstream_rq", [
            "cluster_name": "outbound|9080||reviews.default.svc.cluster.local", "response_code": "200",
        ]) == 49)
        #expect(total(batch.metrics, "envoy_cluster_upstream_rq", ["cluster_name": "inbound|9080||", "response_code": "404"]) == 1)
        let counter = try #require(batch.metrics.first { $0.name == "envoy_cluster_upstream_rq" })
        #expect(counter.kind == .counter && counter.temporality == .delta)
        #expect(counter.labels.contains(MetricLabelPair("instance", "127.0.0.1")))
        let listener = try #require(batch.metrics.first { $0.name == "envoy_listener_downstream_cx_total" })
        #expect(listener.labels.contains { $0.name == "listener_address" })
    }

    @Test func turnsTimersIntoHistograms() {
        let batch = StatsdDecoder().decode(
            datagram: Array("envoy.cluster.outbound|9080||ratings.default.svc.cluster.local.upstream_rq_time:7|ms".utf8),
            sender: [], timestampMs: 1)
        let buckets = batch.metrics.filter { $0.name == "envoy_cluster_upstream_rq_time_bucket" }
        #expect(buckets.count == IstioHistogram.bounds.count + 1)
        #expect(buckets.first { $0.labels.contains(MetricLabelPair("le", "5")) }?.value == 0)
        #expect(buckets.first { $0.labels.contains(MetricLabelPair("le", "10")) }?.value == 1)
        #expect(batch.metrics.first { $0.name == "envoy_cluster_upstream_rq_time_sum" }?.value == 7)
        #expect(batch.metrics.allSatisfy { $0.family == "envoy_cluster_upstream_rq_time" })
    }

    @Test func countsAndSkipsMalformedLines() {
        let text = "ok.counter:1|c\nno_colon\nbad.value:abc|c\nbad.type:1|x\nbad.rate:1|c|@2\ngauge.one:3|g"
        let batch = StatsdDecoder().decode(datagram: Array(text.utf8), sender: [], timestampMs: 1)
        #expect(batch.metrics.map(\.name) == ["envoy_ok_counter", "envoy_gauge_one"])
        #expect(batch.rejected.count == 4)
        #expect(batch.rejected.first?.description.hasPrefix("line 2:") == true)
    }
}

@Suite struct EnvoyMetricsServiceDecoderTests {
    @Test func decodesEnvoysStreamWithTheProxysLabels() throws {
        let first = try Envoy_Service_Metrics_V3_StreamMetricsMessage(
            serializedBytes: Fixtures.bytes("envoy/metrics-service/productpage-v1/msg-001.pb"))
        #expect(first.identifier.node.workloadIdentity?.workload == "productpage-v1")
        let message = try Envoy_Service_Metrics_V3_StreamMetricsMessage(
            serializedBytes: Fixtures.bytes("envoy/metrics-service/productpage-v1/msg-002.pb"))
        #expect(!message.hasIdentifier)
        let labels = [MetricLabelPair("workload", "productpage-v1")]
        let batch = EnvoyMetricsServiceDecoder().decode(message, proxyLabels: labels, nowMs: 1)
        #expect(batch.rejected.isEmpty)
        #expect(total(batch.metrics, "envoy_cluster_upstream_rq", [
            "cluster_name": "outbound|9080||details.default.svc.cluster.local", "response_code": "200",
        ]) == 49)
        #expect(batch.metrics.allSatisfy { $0.labels.contains(MetricLabelPair("workload", "productpage-v1")) })
        // Histograms come as histograms, their duplicate summaries are left out.
        #expect(batch.metrics.contains { $0.name == "envoy_cluster_upstream_rq_time_bucket" })
        #expect(!batch.metrics.contains { $0.kind == .summary })
    }
}

@Suite struct OTLPMetricsDecoderTests {
    @Test func decodesEnvoysOpenTelemetryStatsSink() throws {
        let request = try Opentelemetry_Proto_Collector_Metrics_V1_ExportMetricsServiceRequest(
            serializedBytes: Fixtures.bytes("envoy/otlp/metrics/productpage-v1-last-export.pb"))
        let batch = OTLPMetricsDecoder().decode(request, nowMs: 1)
        #expect(batch.rejected.isEmpty)
        #expect(total(batch.metrics, "envoy_cluster_upstream_rq", [
            "cluster_name": "outbound|9080||details.default.svc.cluster.local", "response_code": "200",
        ]) == 49)
        let point = try #require(batch.metrics.first { $0.name == "envoy_cluster_upstream_rq" })
        #expect(point.labels.contains(MetricLabelPair("workload", "productpage-v1")))
        #expect(point.labels.contains(MetricLabelPair("namespace", "default")))
        #expect(point.kind == .counter && point.temporality == .cumulative)
    }

    @Test func readsSDKSumsGaugesAndExponentialHistograms() throws {
        var metric = Opentelemetry_Proto_Metrics_V1_Metric()
        metric.name = "http.server.requests"
        var sum = Opentelemetry_Proto_Metrics_V1_Sum()
        sum.isMonotonic = true
        sum.aggregationTemporality = .delta
        var point = Opentelemetry_Proto_Metrics_V1_NumberDataPoint()
        point.asInt = 5
        point.timeUnixNano = 1_000_000_000
        sum.dataPoints = [point]
        metric.sum = sum
        var exp = Opentelemetry_Proto_Metrics_V1_Metric()
        exp.name = "latency"
        var histogram = Opentelemetry_Proto_Metrics_V1_ExponentialHistogram()
        histogram.aggregationTemporality = .cumulative
        var e = Opentelemetry_Proto_Metrics_V1_ExponentialHistogramDataPoint()
        e.scale = 0
        e.count = 4
        e.sum = 10
        e.zeroCount = 1
        e.positive.offset = 0
        e.positive.bucketCounts = [1, 2]
        histogram.dataPoints = [e]
        exp.exponentialHistogram = histogram
        var scope = Opentelemetry_Proto_Metrics_V1_ScopeMetrics()
        scope.metrics = [metric, exp]
        var resource = Opentelemetry_Proto_Metrics_V1_ResourceMetrics()
        var kv = Opentelemetry_Proto_Common_V1_KeyValue()
        kv.key = "service.name"
        kv.value.stringValue = "checkout"
        resource.resource.attributes = [kv]
        resource.scopeMetrics = [scope]
        var request = Opentelemetry_Proto_Collector_Metrics_V1_ExportMetricsServiceRequest()
        request.resourceMetrics = [resource]
        let batch = OTLPMetricsDecoder().decode(request, nowMs: 1)
        let counter = try #require(batch.metrics.first { $0.name == "http_server_requests_total" })
        #expect(counter.temporality == .delta && counter.value == 5 && counter.timestampMs == 1000)
        #expect(counter.labels.contains(MetricLabelPair("job", "checkout")))
        // Buckets (1,2] and (2,4] at scale 0, plus the zero bucket.
        #expect(total(batch.metrics, "latency_bucket", ["le": "2"]) == 2)
        #expect(total(batch.metrics, "latency_bucket", ["le": "4"]) == 4)
        #expect(total(batch.metrics, "latency_bucket", ["le": "+Inf"]) == 4)
    }
}

@Suite struct RemoteWriteDecoderTests {
    static func snappy(_ bytes: [UInt8]) -> [UInt8] {
        var length = snappy_max_compressed_length(bytes.count)
        var out = [UInt8](repeating: 0, count: length)
        bytes.withUnsafeBufferPointer { input in
            out.withUnsafeMutableBufferPointer { output in
                input.baseAddress!.withMemoryRebound(to: CChar.self, capacity: input.count) { i in
                    output.baseAddress!.withMemoryRebound(to: CChar.self, capacity: output.count) { o in
                        _ = snappy_compress(i, input.count, o, &length)
                    }
                }
            }
        }
        return Array(out.prefix(length))
    }

    static func request() throws -> [UInt8] {
        var request = Prometheus_WriteRequest()
        var series = Prometheus_TimeSeries()
        series.labels = [("__name__", "up"), ("instance", "a:9090"), ("job", "node")].map {
            var l = Prometheus_Label()
            l.name = $0.0
            l.value = $0.1
            return l
        }
        var sample = Prometheus_Sample()
        sample.value = 1
        sample.timestamp = 1_795_706_850_000
        series.samples = [sample]
        var nameless = Prometheus_TimeSeries()
        nameless.samples = [sample]
        request.timeseries = [series, nameless]
        return try request.serializedBytes()
    }

    @Test func decodesSnappyCompressedWriteRequests() throws {
        let compressed = Self.snappy(try Self.request())
        let body = try BodyDecompressor.snappy(compressed, limit: 1 << 20)
        let batch = try RemoteWriteDecoder().decode(protobuf: body)
        #expect(batch.metrics.count == 1)
        #expect(batch.metrics.first?.name == "up")
        #expect(batch.metrics.first?.labels == [MetricLabelPair("instance", "a:9090"), MetricLabelPair("job", "node")])
        #expect(batch.rejected.map(\.description) == ["timeseries[1]: no __name__ label"])
    }

    @Test func refusesCorruptSnappyAndOversizeBodies() throws {
        #expect { try BodyDecompressor.snappy([0x0A, 0xFF, 0xFF, 0xFF], limit: 1 << 20) } throws: {
            ($0 as? DecodeError)?.code == .malformed
        }
        let big = Self.snappy([UInt8](repeating: 7, count: 100_000))
        #expect { try BodyDecompressor.snappy(big, limit: 1000) } throws: { ($0 as? DecodeError)?.code == .decompressedTooLarge }
    }
}

@Suite struct PrometheusTextDecoderTests {
    @Test func readsEnvoysStatsPrometheus() throws {
        let text = String(decoding: try Fixtures.bytes("envoy/prometheus/productpage-v1.usedonly.txt"), as: UTF8.self)
        let batch = PrometheusTextDecoder().decode(text, extraLabels: [MetricLabelPair("workload", "productpage-v1")], nowMs: 7)
        #expect(batch.rejected.isEmpty, "\(batch.rejected.prefix(3))")
        #expect(total(batch.metrics, "envoy_cluster_upstream_rq", [
            "cluster_name": "outbound|9080||details.default.svc.cluster.local", "response_code": "200",
        ]) == 49)
        let counter = try #require(batch.metrics.first { $0.name == "envoy_cluster_upstream_rq" })
        #expect(counter.kind == .counter && counter.timestampMs == 7)
        #expect(counter.labels.contains(MetricLabelPair("workload", "productpage-v1")))
        let bucket = try #require(batch.metrics.first { $0.name == "envoy_cluster_upstream_rq_time_bucket" })
        #expect(bucket.family == "envoy_cluster_upstream_rq_time" && bucket.kind == .histogram)
    }

    @Test func parsesEscapesTimestampsAndSpecialValues() {
        let text = """
            # TYPE a gauge
            a{path="x\\"y\\\\z",b="1"} +Inf 1700000000000
            b_total 3
            broken{x=1} 2
            """
        let batch = PrometheusTextDecoder().decode(text, extraLabels: [], nowMs: 5)
        #expect(batch.metrics.count == 2)
        #expect(batch.metrics[0].labels.contains(MetricLabelPair("path", #"x"y\z"#)))
        #expect(batch.metrics[0].value == .infinity && batch.metrics[0].timestampMs == 1_700_000_000_000)
        #expect(batch.metrics[0].kind == .gauge && batch.metrics[1].kind == .untyped)
        #expect(batch.rejected.first?.description.hasPrefix("line 4: label value must be quoted") == true)
    }

    @Test func readsLinesEndingInCRLF() {
        let text = "# TYPE a_total counter\r\na_total{x=\"1\"} 3\r\nb 4\r\n"
        let batch = PrometheusTextDecoder().decode(text, extraLabels: [], nowMs: 5)
        #expect(batch.rejected.isEmpty, "\(batch.rejected)")
        #expect(batch.metrics.map(\.name) == ["a_total", "b"])
        #expect(batch.metrics.map(\.value) == [3, 4])
        #expect(batch.metrics.first?.kind == .counter)
    }
}
