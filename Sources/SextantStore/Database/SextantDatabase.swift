package import GRDB
internal import Foundation
package import Logging
internal import SextantMigrations
package import SextantModel
import Synchronization

/// The embedded SQLite database: one file in the data directory, WAL mode, one writer and pooled
/// readers, schema from the numbered migrations.
package final class SextantDatabase: Sendable {
    package struct Configuration: Sendable {
        /// Folder holding `sextant.db` (flag `--data-dir`, default `./sextant-data`).
        package var directory: String
        /// SQLite `synchronous`: `FULL` makes every acknowledged commit survive power loss; `NORMAL`
        /// survives a process crash only (flag `--sync`).
        package var synchronousFull: Bool = true
        /// Readers that may run at once.
        package var maximumReaders: Int = 4
        /// Series one metric name may have; points of further series are dropped and counted
        /// (flag `--max-series-per-metric`).
        package var maxSeriesPerMetric: Int = 10_000
        /// Largest size of the database file in bytes, through SQLite's `max_page_count`; a write
        /// that needs more fails as a full disk would (flag `--max-db-size`, default nil: no cap).
        package var maxDatabaseBytes: Int64?

        /// Bytes of the database file reads may map (SQLite `mmap_size`).
        package var mmapBytes: Int = 1 << 30
        /// Whether every commit writes its calls' rollups, instead of about once a second: for a
        /// short-lived writer beside a running server (`sextant import`), which must leave no
        /// rollups behind in memory nor take up the server's.
        package var rollupsInEveryCommit = false
        /// How long after a call is stored Istio's counters count it: its other side, or another
        /// channel's report of it, may still move it to another series until then (flag
        /// `--pairing-grace`, default 15 s).
        package var countingGraceSeconds: Double = 15
        /// The time of day for counting and for the index of recent calls (tests set their own).
        package var clock = WallClock.system

        package init(directory: String) {
            self.directory = directory
        }
    }

    package let pool: DatabasePool
    package let path: String
    let cache = DictionaryCache()
    /// Every metric series, its newest sample and the samples not yet in chunks.
    package let metricHead = MetricHead()
    let callSeriesCache = CallSeriesCache()
    /// Every span block's time range and trace filter.
    let spanBlocks = SpanBlockIndex()
    /// The spans written lately, to count resends (used by the writer only).
    let recentSpans = Mutex(RecentSpanKeys())
    /// The calls written lately, for merging and pairing (taken by the writer for each
    /// transaction; nil until the first write, and after a failed one, when it is rebuilt).
    let callIndex = Mutex<CallIndex?>(nil)
    /// The call rollups' changes not yet written (taken by the writer for each transaction; nil
    /// until the first write, and after a failed one, when they are folded in again from the blocks).
    let pendingRollups: Mutex<PendingRollups?>
    let rollupsInEveryCommit: Bool
    /// Istio's counters as exposed (`IstioCounters.swift`).
    let istioCounters = Mutex(SettledCounters())
    /// The counters' changes not yet settled (taken by the writer for each transaction; nil until
    /// the first, and after a failed one, when they are folded in again from the stored calls).
    let unsettledCounters = Mutex<UnsettledCounters?>(nil)
    /// The workloads and services the exposed counters name.
    let identityNamesCache = Mutex<Dictionaries?>(nil)
    let countingGraceMicros: Int64
    /// The time of day for counting and for the index of recent calls.
    package let clock: WallClock
    /// Whether this process keeps Istio's counters: not a short-lived writer beside a running
    /// server (`sextant import`), whose calls the server folds in.
    var countsIstioSeries: Bool { !rollupsInEveryCommit }
    let maxSeriesPerMetric: Int
    let logger: Logger

    package init(configuration: Configuration, logger: Logger) throws {
        try FileManager.default.createDirectory(atPath: configuration.directory, withIntermediateDirectories: true)
        path = (configuration.directory as NSString).appendingPathComponent("sextant.db")
        maxSeriesPerMetric = configuration.maxSeriesPerMetric
        rollupsInEveryCommit = configuration.rollupsInEveryCommit
        countingGraceMicros = Int64(configuration.countingGraceSeconds * 1_000_000)
        clock = configuration.clock
        // A server folds in the blocks a crash left without rollups at its first write; a writer
        // that rolls up every commit never does, as those blocks may be a running server's.
        pendingRollups = Mutex(configuration.rollupsInEveryCommit ? PendingRollups() : nil)
        self.logger = logger
        var config = GRDB.Configuration()
        config.maximumReaderCount = configuration.maximumReaders
        config.busyMode = .timeout(10)
        let synchronous = configuration.synchronousFull ? "FULL" : "NORMAL"
        let maxBytes = configuration.maxDatabaseBytes
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = \(synchronous)")
            if let maxBytes {
                let pageSize = try Int64.fetchOne(db, sql: "PRAGMA page_size") ?? 4096
                // SQLite raises a cap below the current file size to that size: a full file stays full.
                _ = try Int64.fetchOne(db, sql: "PRAGMA max_page_count = \(max(1, maxBytes / pageSize))")
            }
            // Reads map the file instead of copying each page through read(2): queries over the
            // rollups touch many pages, and mapped pages are shared by every connection.
            try db.execute(sql: "PRAGMA mmap_size = \(configuration.mmapBytes)")
            SQLFunctions.register(db)
        }
        pool = try DatabasePool(path: path, configuration: config)
        try migrate(logger: logger)
        try loadSpanBlockIndex()
        try pool.read(metricHead.load)
        let settled = try pool.read(SettledCounters.load)
        istioCounters.withLock { $0 = settled }
    }

    /// Applies every migration not yet recorded in the database, in order.
    private func migrate(logger: Logger) throws {
        var migrator = DatabaseMigrator()
        for migration in SextantMigrations.all() {
            migrator.registerMigration(migration.name) { db in
                try db.execute(sql: migration.sql)
                try Self.migrationSteps[migration.name]?(db)
            }
        }
        let applied = try pool.read { try migrator.appliedIdentifiers($0) }
        try migrator.migrate(pool)
        let now = try pool.read { try migrator.appliedIdentifiers($0) }
        for name in now.subtracting(applied).sorted() {
            logger.info("applied migration", metadata: ["store.migration": "\(name)"])
        }
    }

    /// What a migration does beyond its SQL, in the same transaction: moving rows into a format
    /// SQL cannot write.
    private static let migrationSteps: [String: @Sendable (Database) throws -> Void] = [
        "0011_call_blocks": moveRequestsIntoCallBlocks,
        "0013_metric_chunks": MetricHead.moveSeriesAndSamplesIntoBlocks,
        "0014_istio_counters": seedIstioCounters,
    ]

    /// The names of the migrations recorded in the database.
    package func appliedMigrations() throws -> [String] {
        try pool.read { db in
            try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations ORDER BY identifier")
        }
    }
}
