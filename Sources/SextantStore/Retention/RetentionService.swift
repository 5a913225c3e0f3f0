import Foundation
package import Logging
import ServiceLifecycle

/// Deletes what is past each tier's horizon: raw records after `raw`, 1-, 5- and 10-minute rollups
/// after `minute`, hourly and daily rollups after `hour` (a rollup row once its whole bucket is). Runs every `interval` on an injected clock.
///
/// Deleted pages go to SQLite's free list and are reused by new rows, so under constant load the
/// file stops growing once the horizons are reached. Sextant never runs `VACUUM` itself: it
/// rewrites the whole file under an exclusive lock, which is an operator's choice to make offline.
package final class RetentionService: Service, Sendable {
    package struct Configuration: Sendable {
        /// Raw calls, spans, connections and logs (flag `--retention-raw`, default 24 h).
        package var rawSeconds: Int64 = 24 * 3600
        /// 1-, 5- and 10-minute rollups, and metric samples, whose chunks take less room than minute
        /// rollups would (flag `--retention-minute`, default 7 d).
        package var minuteSeconds: Int64 = 7 * 24 * 3600
        /// Hourly and daily rollups, metric samples' hours included (flag `--retention-hour`, default 90 d).
        package var hourSeconds: Int64 = 90 * 24 * 3600
        /// How often to enforce the horizons.
        package var interval: Duration = .seconds(60)

        package init() {}
    }

    private let database: SextantDatabase
    private let configuration: Configuration
    private let now: @Sendable () -> Int64
    private let logger: Logger

    /// - Parameter now: the current time in Unix seconds (injected so tests can drive it).
    package init(
        database: SextantDatabase, configuration: Configuration, logger: Logger,
        now: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970) }
    ) {
        self.database = database
        self.configuration = configuration
        self.logger = logger
        self.now = now
    }

    package func run() async throws {
        try await runPeriodically(every: configuration.interval, logger: logger, failure: "retention failed") {
            let deleted = try await self.enforce()
            if deleted > 0 { self.logger.debug("retention", metadata: ["store.deleted": "\(deleted)"]) }
        }
    }

    /// Deletes the call rollup rows of one tier whose bucket ended at or before `horizon`.
    private static func rollupStep(tier: Int64, horizon: Int64) -> (String, Int64) {
        (
            """
            DELETE FROM call_rollups WHERE (tier, bucket, series_id) IN
                (SELECT tier, bucket, series_id FROM call_rollups WHERE tier = \(tier) AND bucket < ? LIMIT 10000)
            """, horizon - tier + 1
        )
    }

    /// Deletes everything past its horizon now; returns the number of rows deleted.
    @discardableResult
    package func enforce() async throws -> Int {
        // The rollup rows it deletes then hold every committed call (changes still in memory
        // would bring back a deleted bucket).
        await database.flushRollupsOrWarn()
        // Likewise the metric samples still pending in the head, which retention cannot reach.
        try await database.flushMetricHead()
        let t = now()
        let raw = t - configuration.rawSeconds
        let minute = t - configuration.minuteSeconds
        let hour = t - configuration.hourSeconds
        let steps: [(String, Int64)] = [
            ("DELETE FROM spans WHERE id IN (SELECT id FROM spans WHERE start_us < ? LIMIT 10000)", raw * 1_000_000),
            ("DELETE FROM tcp_connections WHERE id IN (SELECT id FROM tcp_connections WHERE ts_us < ? LIMIT 10000)", raw * 1_000_000),
            ("DELETE FROM logs WHERE id IN (SELECT id FROM logs WHERE ts_us < ? LIMIT 10000)", raw * 1_000_000),
            Self.rollupStep(tier: 60, horizon: minute),
            Self.rollupStep(tier: 300, horizon: minute),
            Self.rollupStep(tier: 600, horizon: minute),
            Self.rollupStep(tier: 3600, horizon: hour),
            Self.rollupStep(tier: 86_400, horizon: hour),
            ("DELETE FROM metric_rollups WHERE tier = 3600 AND bucket < ?", hour),
            ("DELETE FROM endpoints WHERE last_seen_us < ?", raw * 1_000_000),
            // Examples point at traces, which go with the raw records.
            (
                """
                DELETE FROM call_examples WHERE (bucket, reporter, proxy_id, peer_id, service_id, protocol) IN
                    (SELECT bucket, reporter, proxy_id, peer_id, service_id, protocol FROM call_examples
                     WHERE bucket < ? LIMIT 10000)
                """, raw - 59
            ),
        ]
        var total = 0
        // Span blocks go whole, once their newest span is past the horizon.
        while true {
            let deleted = try await database.pool.write { db in
                try self.database.deleteSpanBlocks(before: raw * 1_000_000, limit: 1000, db)
            }
            total += deleted
            if deleted < 1000 { break }
        }
        while true {
            let deleted = try await database.pool.write { db in
                try self.database.deleteCalls(before: raw * 1_000_000, limit: 1000, db)
            }
            total += deleted.calls
            if deleted.blocks < 1000 { break }
        }
        // Metric samples are kept in chunks to the minute horizon, then as hours (before the hours
        // past their own horizon go).
        total += try await database.expireMetricChunks(beforeMs: minute * 1000)
        for (sql, cutoff) in steps {
            // Chunks keep each write transaction short, so ingest is never held up for long.
            while true {
                let deleted = try await database.pool.write { db in
                    try db.execute(sql: sql, arguments: [cutoff])
                    return db.changesCount
                }
                total += deleted
                if deleted < 10000 { break }
            }
        }
        // Istio's counters of a series that has not grown for the hour horizon go, as its rollups do.
        total += try await database.expireIstioCounters(idleBeforeSeconds: hour)
        // A series none of whose data is left (a pod long gone) goes, with its newest sample.
        total += try await database.deleteIdleSeries(beforeMs: (t - max(configuration.rawSeconds, configuration.minuteSeconds, configuration.hourSeconds)) * 1000)
        return total
    }
}
