import SextantIngest
import SextantModel
import SextantWire
import Testing

// Inputs that crashed or hung a decoder, found by scripts/fuzz.sh or while writing its targets
// (the raw files are kept in Tests/Fuzz/regressions/ and replayed by SextantFuzzTests). Each now
// ends as a rejected record or a decoded value.

@Suite struct FuzzFindingsTests {
    private let proxy = NodeIdentity.workload(pod: "reviews-v2-7d8f9c6b4d-x2k9p", namespace: "default")

    private func alsMessage(_ edit: (inout Envoy_Data_Accesslog_V3_AccessLogCommon) -> Void)
        -> Envoy_Service_Accesslog_V3_StreamAccessLogsMessage
    {
        var entry = Envoy_Data_Accesslog_V3_HTTPAccessLogEntry()
        entry.commonProperties.startTime.seconds = 1_795_706_850
        edit(&entry.commonProperties)
        var message = Envoy_Service_Accesslog_V3_StreamAccessLogsMessage()
        message.httpLogs.logEntry = [entry]
        return message
    }

    /// A span with two `tags` members: the second replaces the first, and no tag of the first may
    /// still be looked up by its position in the second (that read past its end).
    @Test func zipkinSpanWithTwoTagsObjectsKeepsTheSecond() throws {
        let body = """
            [{"traceId":"463ac35c9f6413ad48485a3953bb6124","id":"a2fb4a1d1a96d312","kind":"CLIENT",
              "timestamp":1795706850000000,"duration":1000,"localEndpoint":{"serviceName":"productpage.default"},
              "tags":{"a":"1","b":"2","c":"3","node_id":"sidecar~10.0.0.1~productpage-v1-1.default~default.svc.cluster.local",
                "upstream_cluster":"outbound|9080||details.default.svc.cluster.local","http.status_code":"200"},
              "tags":{"node_id":"sidecar~10.0.0.1~productpage-v1-1.default~default.svc.cluster.local"}}]
            """
        let batch = try ZipkinV2Decoder().decode(json: Array(body.utf8))
        #expect(batch.spans.first?.tags.dictionary == ["node_id": "sidecar~10.0.0.1~productpage-v1-1.default~default.svc.cluster.local"])
        #expect(batch.requests.count == 1)
        #expect(batch.requests.first?.responseCode == 0)
    }

    @Test func alsRejectsAStartTimeWhoseMicrosecondsOverflow() throws {
        let message = alsMessage { $0.startTime.seconds = 9_223_372_036_854_775 }
        let batch = try EnvoyALSDecoder().decode(protobuf: message.serializedBytes(), proxy: proxy)
        #expect(batch.requests.isEmpty)
        #expect(batch.rejected.map(\.message) == ["start_time is outside years 1 to 9999"])
    }

    @Test func alsRejectsADurationWhoseMicrosecondsOverflow() throws {
        for seconds: Int64 in [Int64.max, -1] {
            let message = alsMessage { $0.duration.seconds = seconds }
            let batch = try EnvoyALSDecoder().decode(protobuf: message.serializedBytes(), proxy: proxy)
            #expect(batch.requests.isEmpty)
            #expect(batch.rejected.map(\.message) == ["duration is negative or longer than 10,000 years"])
        }
    }

    @Test func alsSkipsATCPEntryWithAnImpossibleStartTime() throws {
        var entry = Envoy_Data_Accesslog_V3_TCPAccessLogEntry()
        entry.commonProperties.startTime.seconds = Int64.min
        var message = Envoy_Service_Accesslog_V3_StreamAccessLogsMessage()
        message.tcpLogs.logEntry = [entry]
        #expect(try EnvoyALSDecoder().decode(protobuf: message.serializedBytes(), proxy: proxy).connections.isEmpty)
    }

    @Test func accessLogRejectsADurationWhoseMicrosecondsOverflow() throws {
        let line = #"{"start_time":"2026-11-26T15:27:30Z","method":"GET","duration":9000000000000000000}"#
        let result = EnvoyAccessLogDecoder(defaultProxy: proxy).decode(lines: Array(line.utf8))
        #expect(result.requests.isEmpty)
        let error = try #require(result.rejected.first)
        #expect(error.location == "line 1")
        #expect(error.message.contains("is too long"))
    }

    @Test func otlpAddsNegativeBucketCountsWithoutOverflow() throws {
        var point = Opentelemetry_Proto_Metrics_V1_ExponentialHistogramDataPoint()
        point.count = 2
        point.negative.bucketCounts = [UInt64.max, 1]
        var metric = Opentelemetry_Proto_Metrics_V1_Metric()
        metric.name = "size"
        metric.exponentialHistogram.aggregationTemporality = .delta
        metric.exponentialHistogram.dataPoints = [point]
        var request = Opentelemetry_Proto_Collector_Metrics_V1_ExportMetricsServiceRequest()
        request.resourceMetrics = [.with { $0.scopeMetrics = [.with { $0.metrics = [metric] }] }]
        let batch = OTLPMetricsDecoder().decode(request, nowMs: 1)
        #expect(batch.rejected.isEmpty)
        let zeroBucket = try #require(batch.metrics.first { $0.name == "size_bucket" })
        #expect(zeroBucket.value == Double(UInt64.max) + 1)
    }

    @Test func otlpSpellsAnInfiniteQuantileAsPrometheusDoes() {
        var summary = Opentelemetry_Proto_Metrics_V1_SummaryDataPoint()
        summary.quantileValues = [.infinity, -.infinity, .nan].map { q in .with { $0.quantile = q; $0.value = 1 } }
        var metric = Opentelemetry_Proto_Metrics_V1_Metric()
        metric.name = "rpc.duration"
        metric.summary.dataPoints = [summary]
        var request = Opentelemetry_Proto_Collector_Metrics_V1_ExportMetricsServiceRequest()
        request.resourceMetrics = [.with { $0.scopeMetrics = [.with { $0.metrics = [metric] }] }]
        let batch = OTLPMetricsDecoder().decode(request, nowMs: 1)
        let quantiles = batch.metrics.compactMap { $0.labels.first { $0.name == "quantile" }?.value }
        #expect(quantiles == ["+Inf", "-Inf", "NaN"])
    }

    @Test func metricsServiceSpellsAnInfiniteQuantileAsPrometheusDoes() {
        var family = Io_Prometheus_Client_MetricFamily()
        family.name = "http.inbound_0.0.0.0_9080.rq_time"
        family.type = .summary
        family.metric = [.with { $0.summary.quantile = [.with { $0.quantile = .infinity; $0.value = 3 }] }]
        var message = Envoy_Service_Metrics_V3_StreamMetricsMessage()
        message.envoyMetrics = [family]
        let batch = EnvoyMetricsServiceDecoder().decode(message, proxyLabels: [], nowMs: 1)
        #expect(batch.metrics.map { $0.labels.first { $0.name == "quantile" }?.value } == ["+Inf"])
    }
}
