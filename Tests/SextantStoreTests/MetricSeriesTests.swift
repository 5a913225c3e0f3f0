import Foundation
import GRDB
import Logging
import SextantModel
@testable import SextantStore
import Synchronization
import Testing

private func point(
    _ name: String, _ value: Double, at ts: Int64, kind: MetricPoint.Kind = .counter,
    temporality: MetricPoint.Temporality = .cumulative, labels: [MetricLabelPair] = [MetricLabelPair("pod", "a")]
) -> MetricPoint {
    MetricPoint(name: name, kind: kind, labels: labels, value: value, timestampMs: ts, temporality: temporality)
}

@Suite struct MetricSeriesTests {
    @Test func addsUpCounterDeltas() async throws {
        try await withTemporaryDatabase { database, _ in
            for (i, delta) in [3.0, 0, 4, 1].enumerated() {
                _ = try await database.write([IngestBatch(metrics: [point("rq", delta, at: Int64(i) * 1000, temporality: .delta)])])
            }
            let latest = try await database.latestSamples(sinceMs: 0)
            #expect(latest.map(\.value) == [8])
            let series = try #require(latest.first?.series)
            let samples = try await database.samples(seriesIDs: [series.id], fromMs: 0, toMs: 10_000)
            #expect(samples[series.id]?.map(\.1) == [3, 3, 7, 8])
        }
    }

    @Test func bridgesCounterResetsSoTheSeriesStaysMonotonic() async throws {
        try await withTemporaryDatabase { database, _ in
            for (i, raw) in [10.0, 15, 2, 6].enumerated() {
                _ = try await database.write([IngestBatch(metrics: [point("rq", raw, at: Int64(i) * 1000)])])
            }
            let series = try #require(try await database.latestSamples(sinceMs: 0).first?.series)
            let samples = try await database.samples(seriesIDs: [series.id], fromMs: 0, toMs: 10_000)
            #expect(samples[series.id]?.map(\.1) == [10, 15, 17, 21])
            // Gauges are kept as they are.
            _ = try await database.write([IngestBatch(metrics: [point("active", 5, at: 0, kind: .gauge), point("active", 2, at: 1000, kind: .gauge)])])
            #expect(try await database.latestSamples(sinceMs: 0).first { $0.series.name == "active" }?.value == 2)
        }
    }

    @Test func capsTheSeriesOfOneMetricAndCountsWhatItDrops() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sextant-test-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var configuration = SextantDatabase.Configuration(directory: folder)
        configuration.maxSeriesPerMetric = 3
        let database = try SextantDatabase(configuration: configuration, logger: Logger.quiet)
        let points = (0..<5).map { point("rq", 1, at: 0, labels: [MetricLabelPair("user", "u\($0)")]) }
            + [point("other", 1, at: 0)]
        let summary = try await database.write([IngestBatch(metrics: points)])
        #expect(summary.metricsStored == 4)
        #expect(summary.metricsDropped == 2)
        // Existing series keep receiving samples.
        let again = try await database.write([IngestBatch(metrics: [point("rq", 2, at: 1000, labels: [MetricLabelPair("user", "u0")])])])
        #expect(again.metricsStored == 1)
    }
}

extension MetricSeriesTests {
    @Test func keepsLabelValuesExactlyThroughStorage() async throws {
        try await withTemporaryDatabase { database, _ in
            let tricky = [MetricLabelPair("path", "a\"b\\c\nd\u{1}é✓"), MetricLabelPair("empty", "")]
            _ = try await database.write([IngestBatch(metrics: [point("odd", 1, at: 0, kind: .gauge, labels: tricky)])])
            let stored = try await database.series(named: ["odd"])
            #expect(stored.first?.labels == tricky.sorted { $0.name < $1.name })
        }
    }
}

extension MetricSeriesTests {
    @Test func samplesStayInChunksToTheMinuteHorizonThenAsHours() async throws {
        try await withTemporaryDatabase { database, _ in
            let hour: Int64 = 1_795_698_000  // an hour boundary, in seconds
            // A gauge sampled every 20 s for two hours.
            let points = (0..<360).map { i in
                point("active", Double(i % 7), at: (hour + Int64(i) * 20) * 1000, kind: .gauge)
            }
            _ = try await database.write([IngestBatch(metrics: points)])
            let id = try #require(try await database.series(named: ["active"]).first?.id)
            var config = RetentionService.Configuration()
            config.rawSeconds = 600
            config.minuteSeconds = 3 * 3600
            // Past the raw horizon, within the minute one: every sample is still there.
            var retention = RetentionService(database: database, configuration: config, logger: .quiet, now: { hour + 4 * 3600 })
            try await retention.enforce()
            #expect(try await database.samples(seriesIDs: [id], fromMs: 0, toMs: .max)[id]?.count == 360)
            #expect(try await database.hourlySamples(seriesIDs: [id], fromMs: 0, toMs: .max)[id]?.isEmpty == true)
            // Past the minute horizon: the chunks are gone, rolled up into their two hours.
            retention = RetentionService(database: database, configuration: config, logger: .quiet, now: { hour + 6 * 3600 })
            try await retention.enforce()
            #expect(try await database.samples(seriesIDs: [id], fromMs: 0, toMs: .max)[id]?.isEmpty == true)
            let hours = try await database.hourlySamples(seriesIDs: [id], fromMs: hour * 1000, toMs: (hour + 7200) * 1000)
            #expect(hours[id]?.map(\.1) == [Double(179 % 7), Double(359 % 7)])
            #expect(hours[id]?.map(\.0) == [(hour + 179 * 20) * 1000, (hour + 359 * 20) * 1000])
            let stats = try await database.pool.read { db in
                try Row.fetchOne(
                    db, sql: "SELECT min_value, max_value, sum_value, count FROM metric_rollups WHERE tier = 3600 AND series_id = ? ORDER BY bucket",
                    arguments: [id])
            }
            #expect(stats?[0] == 0.0 && stats?[1] == 6.0 && stats?[3] == 180)
            #expect(stats?[2] == Double((0..<180).reduce(0) { $0 + $1 % 7 }))
        }
    }
}

extension MetricSeriesTests {
    private static func open(_ folder: String) throws -> SextantDatabase {
        try SextantDatabase(configuration: .init(directory: folder), logger: Logger.quiet)
    }

    private static func count(_ table: String, _ database: SextantDatabase) async throws -> Int {
        try await database.pool.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM \(table)") ?? 0 }
    }

    @Test func aRestartReplaysTheAppendsAndKeepsCountingWhereItWas() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sextant-test-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        do {
            let database = try Self.open(folder)
            for (i, raw) in [10.0, 15].enumerated() {
                _ = try await database.write([IngestBatch(metrics: [point("rq", raw, at: Int64(i) * 1000)])])
            }
            // Nothing is in chunks yet: the appends hold the samples.
            #expect(try await Self.count("metric_chunks", database) == 0)
            #expect(try await Self.count("metric_appends", database) == 2)
        }
        do {
            // As after a crash: the head is rebuilt from the appends, reset detection included.
            let database = try Self.open(folder)
            _ = try await database.write([IngestBatch(metrics: [point("rq", 2, at: 2000)])])
            let series = try #require(try await database.latestSamples(sinceMs: 0).first)
            #expect(series.value == 17)
            try await database.flushMetricHead()
            #expect(try await Self.count("metric_appends", database) == 0)
            #expect(try await Self.count("metric_chunks", database) == 1)
            _ = try await database.write([IngestBatch(metrics: [point("rq", 6, at: 3000)])])
        }
        let database = try Self.open(folder)
        let id = try #require(try await database.latestSamples(sinceMs: 0).first?.series.id)
        // Chunks and the append written after the flush, merged in time order.
        #expect(try await database.samples(seriesIDs: [id], fromMs: 0, toMs: 10_000)[id]?.map(\.1) == [10, 15, 17, 21])
        #expect(try await database.latestSamples(sinceMs: 0).first?.value == 21)
    }

    @Test func aSampleSentAgainReplacesTheOneOfTheSameTime() async throws {
        try await withTemporaryDatabase { database, _ in
            _ = try await database.write([IngestBatch(metrics: [point("g", 1, at: 1000, kind: .gauge), point("g", 2, at: 2000, kind: .gauge)])])
            try await database.flushMetricHead()
            _ = try await database.write([IngestBatch(metrics: [point("g", 5, at: 2000, kind: .gauge), point("g", 0.5, at: 500, kind: .gauge)])])
            let id = try #require(try await database.series(named: ["g"]).first?.id)
            #expect(try await database.samples(seriesIDs: [id], fromMs: 0, toMs: 10_000)[id]?.map(\.1) == [0.5, 1, 5])
            try await database.flushMetricHead()
            #expect(try await database.samples(seriesIDs: [id], fromMs: 0, toMs: 10_000)[id]?.map(\.1) == [0.5, 1, 5])
            #expect(try await database.samples(seriesIDs: [id], fromMs: 900, toMs: 1500)[id]?.map(\.1) == [1])
        }
    }

    @Test func retentionLetsEveryMetricTableShrinkOnceASeriesIsGone() async throws {
        try await withTemporaryDatabase { database, _ in
            let start: Int64 = 1_795_698_000  // seconds
            // Two days of a pod that then went away, and one series that stays.
            let gone = (0..<48).map { point("rq", Double($0), at: (start + Int64($0) * 3600) * 1000, labels: [MetricLabelPair("pod", "old")]) }
            _ = try await database.write([IngestBatch(metrics: gone)])
            let end = start + 47 * 3600
            var config = RetentionService.Configuration()
            config.rawSeconds = 3600
            config.minuteSeconds = 3600
            config.hourSeconds = 3600
            var now = end + 1800
            let clock = Mutex(now)
            let retention = RetentionService(database: database, configuration: config, logger: .quiet, now: { clock.withLock { $0 } })
            _ = try await database.write([IngestBatch(metrics: [point("rq", 1, at: now * 1000, labels: [MetricLabelPair("pod", "new")])])])
            try await retention.enforce()
            // Within every horizon: both series and their chunks are still there.
            #expect(try await database.series(named: ["rq"]).count == 2)
            #expect(try await Self.count("metric_chunks", database) == 2)
            now += 7200
            clock.withLock { $0 = now }
            try await retention.enforce()
            for table in ["metric_chunks", "metric_rollups", "metric_appends", "metric_series_blocks", "metric_series_deleted"] {
                #expect(try await Self.count(table, database) == 0, "\(table)")
            }
            #expect(try await database.series(named: nil).isEmpty)
            // A series that comes back is a new one, with nothing of the old.
            _ = try await database.write([IngestBatch(metrics: [point("rq", 4, at: now * 1000, labels: [MetricLabelPair("pod", "old")])])])
            #expect(try await database.latestSamples(sinceMs: 0).map(\.value) == [4])
        }
    }
}

extension MetricSeriesTests {
    @Test func aBlockThatLostMostOfItsSeriesIsRewrittenWithTheRest() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sextant-test-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let start: Int64 = 1_795_698_000
        do {
            let database = try Self.open(folder)
            // Four pods' series made by one commit; three of the pods then go away.
            _ = try await database.write([
                IngestBatch(metrics: (0..<4).map { point("rq", 1, at: start * 1000, labels: [MetricLabelPair("pod", "p\($0)")]) })
            ])
            _ = try await database.write([
                IngestBatch(metrics: [point("rq", 2, at: (start + 7200) * 1000, labels: [MetricLabelPair("pod", "p3")])])
            ])
            var config = RetentionService.Configuration()
            (config.rawSeconds, config.minuteSeconds, config.hourSeconds) = (600, 600, 600)
            try await RetentionService(database: database, configuration: config, logger: .quiet, now: { start + 7300 }).enforce()
            #expect(try await Self.count("metric_series_blocks", database) == 1)
            #expect(try await Self.count("metric_series_deleted", database) == 0)
            #expect(try await database.series(named: nil).map(\.labels) == [[MetricLabelPair("pod", "p3")]])
            // The strings only the gone series used leave the head's symbols; a new one takes a freed id.
            #expect(database.metricHead.view().state.symbolIDs["p0"] == nil)
            #expect(database.metricHead.view().state.symbolIDs["p3"] != nil)
        }
        // What a start reads from the rewritten block: the one series, with its id and newest sample.
        let database = try Self.open(folder)
        #expect(try await database.latestSamples(sinceMs: 0).map(\.value) == [2])
        _ = try await database.write([IngestBatch(metrics: [point("rq", 3, at: (start + 7210) * 1000, labels: [MetricLabelPair("pod", "p9")])])])
        #expect(Set(try await database.series(named: ["rq"]).map(\.id)).count == 2)
    }
}
