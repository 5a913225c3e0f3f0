internal import Foundation
import GRDB
import SextantModel

/// The metric writes of one transaction: the series it made, each touched series' counter state
/// as its samples leave it, and the samples as one append.
struct MetricWrites {
    var newSeries: [MetricHead.NewSeries] = []
    /// Indices in `newSeries` by key hash.
    private var newByHash: [Int: [Int]] = [:]
    private var newByName: [String: Int] = [:]
    var states: [Int64: MetricHead.Latest] = [:]
    var append = MetricAppend()

    func made(_ key: MetricSeriesKey) -> Int64? {
        for index in newByHash[key.hash] ?? [] where newSeries[index].key.name == key.name && newSeries[index].key.labels == key.labels {
            return newSeries[index].id
        }
        return nil
    }

    func madeCount(name: String) -> Int { newByName[name] ?? 0 }

    mutating func add(_ series: MetricHead.NewSeries) {
        newByHash[series.key.hash, default: []].append(newSeries.count)
        newByName[series.key.name, default: 0] += 1
        newSeries.append(series)
    }
}

extension SextantDatabase {
    /// Stores one metric point: finds or creates its series (refusing new series past the
    /// per-name cap), turns counter deltas and resets into a monotonic cumulative value, and adds
    /// the sample to the transaction's append.
    /// - Returns: false when the point was refused because its metric has `maxSeriesPerMetric` series.
    @discardableResult
    func insert(metric prepared: PreparedMetric, _ db: Database, writes: inout MetricWrites, summary: inout WriteSummary) throws -> Bool {
        let p = prepared.point
        // A NaN says nothing (and SQLite would read it back as NULL).
        guard !p.value.isNaN else {
            summary.metricsDropped += 1
            return true
        }
        let key = prepared.key
        let id: Int64
        var latest: MetricHead.Latest?
        if let found = metricHead.find(key) {
            id = found.series.id
            latest = writes.states[id] ?? found.series.latest
        } else if let made = writes.made(key) {
            id = made
            latest = writes.states[id]
        } else {
            guard metricHead.count(name: key.name) + writes.madeCount(name: key.name) < maxSeriesPerMetric else {
                summary.metricsDropped += 1
                return false
            }
            // Written with the commit's other new series, as one block (`storeSeries`).
            id = metricHead.newID(writes.newSeries.count)
            writes.add(MetricHead.NewSeries(id: id, key: key, family: p.family, kind: p.kind))
        }
        var value = p.value
        var raw = p.value
        var offset = latest?.offset ?? 0
        if p.isCumulative {
            switch p.temporality {
            case .delta:
                value = (latest?.value ?? 0) + p.value
                raw = value
            case .cumulative:
                if let latest, p.timestampMs >= latest.timeMs, p.value < latest.raw {
                    // The sender restarted: carry what it had counted.
                    offset += latest.raw
                }
                value = p.value + offset
            }
        }
        let sample = MetricAppend.Sample(
            seriesID: id, timeMs: p.timestampMs, value: value, raw: raw, offset: offset, isDelta: p.temporality == .delta)
        writes.states[id] = MetricHead.Latest.advanced(latest, by: sample)
        writes.append.samples.append(sample)
        summary.metricsStored += 1
        return true
    }

    /// Writes the transaction's new series as one block; returns its id (nil when there were none).
    func storeSeries(_ writes: MetricWrites, _ db: Database) throws -> Int64? {
        guard !writes.newSeries.isEmpty else { return nil }
        try db.cachedStatement(sql: "INSERT INTO metric_series_blocks (data) VALUES (?)")
            .execute(arguments: [Data(MetricSeriesBlock.encode(writes.newSeries))])
        return db.lastInsertedRowID
    }

    /// Writes the transaction's samples as one append row; returns its id (nil when there were none).
    func storeAppend(_ writes: MetricWrites, _ db: Database) throws -> Int64? {
        guard !writes.append.samples.isEmpty else { return nil }
        try db.cachedStatement(sql: "INSERT INTO metric_appends (data) VALUES (?)").execute(arguments: [Data(writes.append.encoded())])
        return db.lastInsertedRowID
    }
}

extension SextantDatabase {
    /// Deletes the series whose newest sample is older than `beforeMs` (every horizon): their
    /// chunks and rollups are past their horizons, and nothing of them is pending. Then rewrites
    /// the series blocks that lost half their series (or deletes them when none is left). Returns
    /// the rows deleted.
    func deleteIdleSeries(beforeMs: Int64) async throws -> Int {
        var deleted = try await pool.writeWithoutTransaction { db in
            // On the writer's connection: no commit can give these series a sample meanwhile.
            let ids = self.metricHead.idle(beforeMs: beforeMs)
            guard !ids.isEmpty else { return 0 }
            var deleted = 0
            try db.inTransaction {
                for start in stride(from: 0, to: ids.count, by: 500) {
                    let list = ids[start..<min(start + 500, ids.count)].map(String.init).joined(separator: ",")
                    // Their newest samples leave the snapshot at the next flush.
                    try db.execute(sql: "DELETE FROM metric_chunks WHERE series_id IN (\(list))")
                    deleted += db.changesCount
                    try db.execute(sql: "INSERT OR IGNORE INTO metric_series_deleted (series_id) VALUES " + ids[start..<min(start + 500, ids.count)].map { "(\($0))" }.joined(separator: ","))
                }
                return .commit
            }
            self.metricHead.remove(ids: ids)
            return deleted + ids.count
        }
        for (block, live) in metricHead.sparseBlocks() {
            deleted += try await pool.writeWithoutTransaction { db in
                var written: Int64?
                var gone = 0
                try db.inTransaction {
                    guard let data = try Data.fetchOne(db, sql: "SELECT data FROM metric_series_blocks WHERE id = ?", arguments: [block])
                    else { return .commit }
                    let series = try MetricSeriesBlock.decode([UInt8](data))
                    let survivors = series.filter { live.contains($0.id) }
                    if !survivors.isEmpty {
                        try db.execute(
                            sql: "INSERT INTO metric_series_blocks (data) VALUES (?)", arguments: [Data(MetricSeriesBlock.encode(survivors))])
                        written = db.lastInsertedRowID
                    }
                    try db.execute(sql: "DELETE FROM metric_series_blocks WHERE id = ?", arguments: [block])
                    let dead = series.filter { !live.contains($0.id) }.map { String($0.id) }
                    for start in stride(from: 0, to: dead.count, by: 500) {
                        try db.execute(
                            sql: "DELETE FROM metric_series_deleted WHERE series_id IN (\(dead[start..<min(start + 500, dead.count)].joined(separator: ",")))")
                    }
                    gone = dead.count
                    return .commit
                }
                self.metricHead.rewrote(block, into: written, series: live)
                return gone
            }
        }
        return deleted
    }
}

extension SextantDatabase {
    /// Rolls the chunks whose samples are all older than `beforeMs` up into the hour tier, then
    /// deletes them: the hours stay answerable to the hour horizon. Returns the chunks deleted.
    func expireMetricChunks(beforeMs: Int64) async throws -> Int {
        var total = 0
        while true {
            let done = try await pool.write { db -> Int in
                let rows = try Row.fetchAll(
                    db,
                    sql: """
                        SELECT series_id, max_ts_ms, flush, data FROM metric_chunks WHERE max_ts_ms < ?
                        ORDER BY max_ts_ms, flush LIMIT 1000
                        """,
                    arguments: [beforeMs])
                var bySeries: [Int64: [(Int64, Double)]] = [:]
                for row in rows {
                    bySeries[row["series_id"], default: []].append(contentsOf: try SampleChunk.decode([UInt8](row["data"] as Data)))
                }
                for (id, samples) in bySeries {
                    // Stable: of equal times the later chunk's sample stays last.
                    let sorted = samples.enumerated().sorted { a, b in a.element.0 != b.element.0 ? a.element.0 < b.element.0 : a.offset < b.offset }
                    try MetricHead.rollUp(sorted.map(\.element), tier: MetricHead.rollupTier, seriesID: id, db)
                }
                let delete = try db.cachedStatement(sql: "DELETE FROM metric_chunks WHERE series_id = ? AND max_ts_ms = ? AND flush = ?")
                for row in rows {
                    try delete.execute(arguments: [row["series_id"] as Int64, row["max_ts_ms"] as Int64, row["flush"] as Int64])
                }
                return rows.count
            }
            total += done
            if done < 1000 { return total }
        }
    }
}
