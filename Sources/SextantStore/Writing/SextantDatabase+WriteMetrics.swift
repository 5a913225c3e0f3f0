import GRDB
import SextantModel

extension SextantDatabase {
    /// Stores one metric point: finds or creates its series (refusing new series past the
    /// per-name cap), turns counter deltas and resets into a monotonic cumulative value, and keeps
    /// the series' newest sample.
    /// - Returns: false when the point was refused because its metric has `maxSeriesPerMetric` series.
    @discardableResult
    func insert(metric prepared: PreparedMetric, _ db: Database, summary: inout WriteSummary) throws -> Bool {
        let p = prepared.point
        // SQLite cannot hold NaN (it would become NULL); such a sample says nothing anyway.
        guard !p.value.isNaN else {
            summary.metricsDropped += 1
            return true
        }
        let key = prepared.key
        let labels = key.labels
        var series: MetricSeriesCache.Series
        if let cached = metricCache.cached(key) {
            series = cached
        } else if metricCache.isFullAndCached(name: p.name, limit: maxSeriesPerMetric) {
            // A flood of new label values costs no look-up once the metric is full.
            summary.metricsDropped += 1
            return false
        } else if let row = try Row.fetchOne(
            db.cachedStatement(
                sql: """
                    SELECT s.id, l.ts_ms, l.value, l.raw, l.offset FROM metric_series s
                    LEFT JOIN metric_latest l ON l.series_id = s.id WHERE s.name = ? AND s.labels = ?
                    """), arguments: [p.name, labels])
        {
            let ts: Int64? = row[1]
            series = MetricSeriesCache.Series(
                id: row[0], hasLatest: ts != nil, ts: ts ?? 0, value: row[2] ?? 0, raw: row[3] ?? 0, offset: row[4] ?? 0)
        } else {
            guard try metricCache.seriesCount(name: p.name, db) < maxSeriesPerMetric else {
                summary.metricsDropped += 1
                return false
            }
            try db.cachedStatement(sql: "INSERT INTO metric_series (name, family, kind, labels) VALUES (?, ?, ?, ?)")
                .execute(arguments: [p.name, p.family, p.kind.rawValue, labels])
            metricCache.added(name: p.name)
            series = MetricSeriesCache.Series(id: db.lastInsertedRowID, hasLatest: false, ts: 0, value: 0, raw: 0, offset: 0)
        }
        let value: Double
        var raw = p.value
        if p.isCumulative {
            switch p.temporality {
            case .delta:
                value = (series.hasLatest ? series.value : 0) + p.value
                raw = value
            case .cumulative:
                if series.hasLatest, p.timestampMs >= series.ts, p.value < series.raw {
                    // The sender restarted: carry what it had counted.
                    series.offset += series.raw
                }
                value = p.value + series.offset
            }
        } else {
            value = p.value
        }
        try db.cachedStatement(sql: "INSERT OR REPLACE INTO metric_samples (series_id, ts_ms, value) VALUES (?, ?, ?)")
            .execute(arguments: [series.id, p.timestampMs, value])
        let rollup = try db.cachedStatement(
            sql: """
                INSERT INTO metric_rollups (tier, bucket, series_id, min_value, max_value, sum_value, count, last_value, last_ts_ms)
                VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?)
                ON CONFLICT (tier, bucket, series_id) DO UPDATE SET
                    min_value = min(min_value, excluded.min_value), max_value = max(max_value, excluded.max_value),
                    sum_value = sum_value + excluded.sum_value, count = count + 1,
                    last_value = iif(excluded.last_ts_ms >= last_ts_ms, excluded.last_value, last_value),
                    last_ts_ms = max(last_ts_ms, excluded.last_ts_ms)
                """)
        for tier in RollupDeltas.tiers {
            let bucket = RollupDeltas.bucket(seconds: prepared.seconds, tier: tier)
            try rollup.execute(arguments: [tier, bucket, series.id, value, value, value, value, p.timestampMs])
        }
        if !series.hasLatest || p.timestampMs >= series.ts || p.temporality == .delta {
            series.hasLatest = true
            series.ts = max(series.ts, p.timestampMs)
            series.value = value
            series.raw = raw
            try db.cachedStatement(
                sql: "INSERT OR REPLACE INTO metric_latest (series_id, ts_ms, value, raw, offset) VALUES (?, ?, ?, ?, ?)"
            ).execute(arguments: [series.id, series.ts, series.value, series.raw, series.offset])
        }
        metricCache.store(key, series)
        summary.metricsStored += 1
        return true
    }
}
