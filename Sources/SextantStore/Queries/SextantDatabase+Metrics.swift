internal import Foundation
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

extension MetricHeadView {
    package func stored(_ slot: Int32) -> StoredSeries {
        StoredSeries(id: id(slot), name: name(slot), family: family(slot), kind: kind(slot), labels: labels(slot))
    }
}

extension SextantDatabase {
    /// Every series whose newest sample is at least `sinceMs`, with that sample; only series with
    /// one of `names` when given.
    package func latestSamples(sinceMs: Int64, names: Set<String>? = nil) async throws -> [LatestSample] {
        let view = metricHead.view()
        return Self.slots(view, named: names).compactMap { slot in
            guard let latest = view.latest(slot), latest.timeMs >= sinceMs else { return nil }
            return LatestSample(series: view.stored(slot), timestampMs: latest.timeMs, value: latest.value)
        }
    }

    /// Stored series: those with one of `names`, or all when `names` is nil.
    package func series(named names: Set<String>?) async throws -> [StoredSeries] {
        let view = metricHead.view()
        return Self.slots(view, named: names).map(view.stored)
    }

    private static func slots(_ view: MetricHeadView, named names: Set<String>?) -> [Int32] {
        guard let names else { return view.candidates(name: nil, equal: []) }
        return names.sorted().flatMap { view.candidates(name: $0, equal: []) }
    }

    /// Samples of the given series in `[from, to]` (ms), ordered by time: the chunks' and those
    /// still pending in the head (of two at the same time, the one stored last).
    package func samples(seriesIDs: [Int64], fromMs: Int64, toMs: Int64) async throws -> [Int64: [(Int64, Double)]] {
        let view = metricHead.view()
        let chunks = try await pool.read { db in
            var out: [Int64: [[(Int64, Double)]]] = [:]
            let statement = try db.cachedStatement(
                sql: "SELECT data FROM metric_chunks WHERE series_id = ? AND max_ts_ms >= ? AND min_ts_ms <= ? ORDER BY flush")
            for id in seriesIDs {
                let rows = try Row.fetchAll(statement, arguments: [id, fromMs, toMs])
                out[id] = try rows.map { try SampleChunk.decode([UInt8]($0["data"] as Data)) }
            }
            return out
        }
        let pending = view.pendingSamples(of: Set(seriesIDs), fromMs: fromMs, toMs: toMs)
        var out: [Int64: [(Int64, Double)]] = [:]
        for id in seriesIDs {
            // In the order stored (chunks by id, then pending), so that a stable sort keeps the
            // last stored of equal times last.
            var all = (chunks[id] ?? []).joined().filter { $0.0 >= fromMs && $0.0 <= toMs }
            all.append(contentsOf: pending[id] ?? [])
            all.sort { $0.0 < $1.0 }
            var unique: [(Int64, Double)] = []
            unique.reserveCapacity(all.count)
            for sample in all {
                if unique.last?.0 == sample.0 { unique[unique.count - 1] = sample } else { unique.append(sample) }
            }
            out[id] = unique
        }
        return out
    }

    /// Each hour's newest sample, for the hours whose chunks retention rolled up and deleted, as
    /// `(ms, value)` points in `[from, to]` (ms), ordered by time.
    package func hourlySamples(seriesIDs: [Int64], fromMs: Int64, toMs: Int64) async throws -> [Int64: [(Int64, Double)]] {
        try await pool.read { db in
            var out: [Int64: [(Int64, Double)]] = [:]
            let statement = try db.cachedStatement(
                sql: """
                    SELECT last_ts_ms, last_value FROM metric_rollups WHERE tier = ? AND series_id = ? AND bucket >= ?
                        AND bucket <= ? ORDER BY bucket
                    """)
            let tier = MetricHead.rollupTier
            for id in seriesIDs {
                out[id] = try Row.fetchAll(statement, arguments: [tier, id, fromMs / 1000 - tier, toMs / 1000])
                    .map { ($0["last_ts_ms"], $0["last_value"]) }.filter { $0.0 >= fromMs && $0.0 <= toMs }
            }
            return out
        }
    }
}
