import SextantIngest
import SextantModel
import Testing

@Suite struct IngestLimitsTests {
    static let now: Int64 = 1_795_706_850_000_000

    static func span(_ id: SpanID, start: Int64 = now, duration: Int64 = 1000, tags: Attributes = [:]) -> Span {
        Span(
            traceID: TraceID(hex: String(repeating: "a", count: 32))!, spanID: id, kind: .server, name: "GET /", startMicros: start,
            durationMicros: duration, localEndpoint: Span.Endpoint(serviceName: "api"), tags: tags)
    }

    static func call(spanID: SpanID?, start: Int64 = now, duration: Int64 = 1000) -> CallReport {
        CallReport(
            reporter: .destination, proxy: WorkloadIdentity(namespace: "default", workload: "api-v1"),
            service: .unknown, startMicros: start, durationMicros: duration, responseCode: 200,
            traceID: spanID.map { _ in TraceID(hex: String(repeating: "a", count: 32))! }, spanID: spanID, channel: .spans)
    }

    static func point(_ name: String, labels: [MetricLabelPair] = [], at ms: Int64 = now / 1000) -> MetricPoint {
        MetricPoint(name: name, kind: .gauge, labels: labels, value: 1, timestampMs: ms)
    }

    @Test func rejectsANegativeDurationAndTheCallOfItsSpanButKeepsTheRest() {
        var batch = IngestBatch(
            spans: [Self.span("1111111111111111"), Self.span("2222222222222222", duration: -5)],
            requests: [Self.call(spanID: "1111111111111111"), Self.call(spanID: "2222222222222222", duration: -5)])
        _ = IngestLimits().apply(to: &batch, nowMicros: Self.now)
        #expect(batch.spans.map(\.spanID) == ["1111111111111111"])
        #expect(batch.requests.map(\.spanID) == ["1111111111111111"])
        #expect(batch.rejected.map(\.reason) == [.negativeDuration])
        #expect(batch.rejected[0].description.contains("span 2222222222222222"))
    }

    @Test func rejectsDurationsLongerThanAYearSoSumsCannotOverflow() {
        var batch = IngestBatch(
            spans: [Self.span("1111111111111111", duration: .max), Self.span("2222222222222222")],
            requests: [Self.call(spanID: nil, duration: 367 * 86_400 * 1_000_000), Self.call(spanID: nil)])
        _ = IngestLimits().apply(to: &batch, nowMicros: Self.now)
        #expect(batch.spans.map(\.spanID) == ["2222222222222222"])
        #expect(batch.requests.map(\.durationMicros) == [1000])
        #expect(batch.rejected.map(\.reason) == [.invalid, .invalid])
        #expect(batch.rejected.allSatisfy { $0.description.contains("longer than a year") })
    }

    @Test func rejectsRecordsTooFarInTheFuture() {
        let tooLate = Self.now + 11 * 60 * 1_000_000
        let fine = Self.now + 9 * 60 * 1_000_000
        var batch = IngestBatch(
            requests: [Self.call(spanID: nil, start: tooLate), Self.call(spanID: nil, start: fine)],
            logs: [LogRecord(timeMicros: tooLate, service: "api", body: "later")],
            metrics: [Self.point("up", at: tooLate / 1000), Self.point("up", at: fine / 1000)])
        _ = IngestLimits().apply(to: &batch, nowMicros: Self.now)
        #expect(batch.requests.count == 1)
        #expect(batch.logs.isEmpty)
        #expect(batch.metrics.count == 1)
        #expect(batch.rejected.count == 3)
        #expect(batch.rejected.allSatisfy { $0.reason == .futureTimestamp })
        #expect(batch.rejected[0].message.contains("660 s ahead"))
    }

    @Test func dropsExcessAttributesAndTruncatesLongValuesOfSpans() {
        var limits = IngestLimits()
        limits.maxAttributesPerRecord = 3
        limits.maxStringBytes = 8
        let tags: Attributes = ["a": "1", "b": "2", "c": "é long value", "d": "4", "e": "5"]
        var batch = IngestBatch(spans: [Self.span("1111111111111111", tags: tags)])
        let report = limits.apply(to: &batch, nowMicros: Self.now)
        #expect(batch.rejected.isEmpty)
        #expect(batch.spans[0].tags == ["a": "1", "b": "2", "c": "é long "])
        #expect(report.droppedAttributes == 2)
        #expect(report.truncatedStrings == 1)
    }

    @Test func truncatesOnAScalarBoundary() {
        var limits = IngestLimits()
        limits.maxStringBytes = 5
        #expect(limits.truncated("abcd€f") == "abcd")
        #expect(limits.truncated("abcde") == nil)
        #expect(limits.truncated("ab€c") == "ab€")
    }

    @Test func rejectsMetricPointsWithTooManyOrTooLongLabelsRatherThanMergingSeries() {
        var limits = IngestLimits()
        limits.maxAttributesPerRecord = 2
        limits.maxStringBytes = 10
        var batch = IngestBatch(metrics: [
            Self.point("ok", labels: [MetricLabelPair("a", "1")]),
            Self.point("many", labels: [MetricLabelPair("a", "1"), MetricLabelPair("b", "2"), MetricLabelPair("c", "3")]),
            Self.point("long", labels: [MetricLabelPair("a", String(repeating: "x", count: 11))]),
        ])
        _ = limits.apply(to: &batch, nowMicros: Self.now)
        #expect(batch.metrics.map(\.name) == ["ok"])
        #expect(batch.rejected.map(\.reason) == [.tooManyLabels, .labelTooLong])
    }

    @Test func refusesARequestWithTooManyRecordsCountingWhatTheSenderSent() throws {
        var limits = IngestLimits()
        limits.maxRecordsPerRequest = 2
        // Two spans and the calls derived from them are two records.
        let spans = IngestBatch(
            spans: [Self.span("1111111111111111"), Self.span("2222222222222222")],
            requests: [Self.call(spanID: "1111111111111111"), Self.call(spanID: "2222222222222222")])
        try limits.checkCount(spans)
        let three = IngestBatch(
            metrics: [Self.point("a"), Self.point("b")], rejected: [RecordError(location: "line 3", message: "bad")])
        #expect { try limits.checkCount(three) } throws: { ($0 as? DecodeError)?.code == .tooManyRecords }
    }
}
