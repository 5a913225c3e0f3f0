import Foundation
import GRDB
package import SextantModel

/// One stored metric series.
package struct StoredSeries: Sendable, Hashable {
    package var id: Int64
    package var name: String
    package var family: String
    package var kind: MetricPoint.Kind
    package var labels: [MetricLabelPair]
}

/// A series' newest sample.
package struct LatestSample: Sendable, Hashable {
    package var series: StoredSeries
    package var timestampMs: Int64
    package var value: Double
}

extension SextantDatabase {
    /// Every series whose newest sample is at least `sinceMs`, with that sample; only series with
    /// one of `names` when given.
    package func latestSamples(sinceMs: Int64, names: Set<String>? = nil) async throws -> [LatestSample] {
        try await pool.read { db in
            let sql = """
                SELECT s.id, s.name, s.family, s.kind, s.labels, l.ts_ms, l.value
                FROM metric_latest l JOIN metric_series s ON s.id = l.series_id WHERE l.ts_ms >= ?
                """
            let rows: [Row]
            if let names {
                let statement = try db.cachedStatement(sql: sql + " AND s.name = ?")
                rows = try names.sorted().flatMap { try Row.fetchAll(statement, arguments: [sinceMs, $0]) }
            } else {
                rows = try Row.fetchAll(db, sql: sql, arguments: [sinceMs])
            }
            return rows.map { row in LatestSample(series: Self.series(row), timestampMs: row[5], value: row[6]) }
        }
    }

    /// Stored series: those with one of `names`, or all when `names` is nil.
    package func series(named names: Set<String>?) async throws -> [StoredSeries] {
        try await pool.read { db in
            guard let names else {
                return try Row.fetchAll(db, sql: "SELECT id, name, family, kind, labels FROM metric_series").map(Self.series)
            }
            let statement = try db.cachedStatement(sql: "SELECT id, name, family, kind, labels FROM metric_series WHERE name = ?")
            return try names.sorted().flatMap { try Row.fetchAll(statement, arguments: [$0]).map(Self.series) }
        }
    }

    /// Samples of the given series in `[from, to]` (ms), ordered by series and time.
    package func samples(seriesIDs: [Int64], fromMs: Int64, toMs: Int64) async throws -> [Int64: [(Int64, Double)]] {
        try await pool.read { db in
            var out: [Int64: [(Int64, Double)]] = [:]
            let statement = try db.cachedStatement(
                sql: "SELECT ts_ms, value FROM metric_samples WHERE series_id = ? AND ts_ms >= ? AND ts_ms <= ? ORDER BY ts_ms")
            for id in seriesIDs {
                let rows = try Row.fetchAll(statement, arguments: [id, fromMs, toMs])
                out[id] = rows.map { ($0[0], $0[1]) }
            }
            return out
        }
    }

    /// Each bucket's newest sample from a rollup tier (60 or 3600 s), as `(ms, value)` points in
    /// `[from, to]` (ms): the same shape as `samples`, reaching back as far as the tier is kept.
    package func rollupSamples(seriesIDs: [Int64], tier: Int64, fromMs: Int64, toMs: Int64) async throws
        -> [Int64: [(Int64, Double)]]
    {
        try await pool.read { db in
            var out: [Int64: [(Int64, Double)]] = [:]
            let statement = try db.cachedStatement(
                sql: """
                    SELECT last_ts_ms, last_value FROM metric_rollups WHERE tier = ? AND series_id = ? AND bucket >= ?
                        AND bucket <= ? ORDER BY bucket
                    """)
            for id in seriesIDs {
                out[id] = try Row.fetchAll(statement, arguments: [tier, id, fromMs / 1000 - tier, toMs / 1000])
                    .map { ($0[0], $0[1]) }.filter { $0.0 >= fromMs && $0.0 <= toMs }
            }
            return out
        }
    }

    private static func series(_ row: Row) -> StoredSeries {
        let labels = SpanJSON.decodeObject(row[4]).map { MetricLabelPair($0.key, $0.value) }.sorted { $0.name < $1.name }
        return StoredSeries(
            id: row[0], name: row[1], family: row[2], kind: MetricPoint.Kind(rawValue: row[3]) ?? .untyped, labels: labels)
    }
}
