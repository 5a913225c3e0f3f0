import Foundation
import GRDB
import Logging
import SextantModel
@testable import SextantStore
import Testing

@Suite struct MigrationTests {
    /// A database in `folder` as the migration files before `prefix` left it (`count` of them),
    /// written by the SQL files themselves, with Sextant's SQL functions.
    private static func olderDatabase(in folder: String, migrationsBefore prefix: String, count: Int) throws
        -> DatabaseQueue
    {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let sources = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../migrations").standardized
        let older = try FileManager.default.contentsOfDirectory(atPath: sources.path)
            .filter { $0.hasSuffix(".sql") && $0 < prefix }.sorted()
        #expect(older.count == count)
        var configuration = Configuration()
        configuration.prepareDatabase { SQLFunctions.register($0) }
        let queue = try DatabaseQueue(
            path: (folder as NSString).appendingPathComponent("sextant.db"), configuration: configuration)
        var migrator = DatabaseMigrator()
        for file in older {
            let sql = try String(contentsOf: sources.appendingPathComponent(file), encoding: .utf8)
            migrator.registerMigration(String(file.dropLast(4))) { try $0.execute(sql: sql) }
        }
        try migrator.migrate(queue)
        return queue
    }

    /// `ShopMesh`'s workloads (web-v1 id 1, api-v1 id 2) and api service (id 1), as rows of an
    /// older database.
    private static func insertShopDictionaries(_ db: Database) throws {
        try db.execute(
            sql: """
                INSERT INTO workloads (id, namespace, workload, app, version, canonical_service, canonical_revision,
                    principal, cluster)
                VALUES (1, 'shop', 'web-v1', 'web', 'v1', 'web', 'v1', 'unknown', 'Kubernetes'),
                    (2, 'shop', 'api-v1', 'api', 'v1', 'api', 'v1', 'unknown', 'Kubernetes');
                INSERT INTO services (id, host, name, namespace) VALUES (1, 'api.shop.svc.cluster.local', 'api', 'shop');
                """)
    }

    /// A database written before migration 0007 (sketches as one row per bucket index, minute and
    /// hour tiers only, TCP raw only) answers the same after it.
    @Test func sketchBlobMigrationKeepsWhatOlderDatabasesHeld() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sextant-migrate-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let hour: Int64 = 1_795_698_000  // an hour boundary
        do {
            let queue = try Self.olderDatabase(in: folder, migrationsBefore: "0007", count: 6)
            try await queue.write { db in
                try Self.insertShopDictionaries(db)
                try db.execute(
                    sql: """
                        INSERT INTO call_series (id, reporter, proxy_id, peer_id, service_id, protocol, response_code,
                            grpc_status, response_flags, security_policy, paired)
                        VALUES (1, 0, 1, 2, 1, 0, 200, -1, '-', 'unknown', 1);
                        """)
                // Ten minutes of 10 calls each (6 at sketch index 400, 4 at 420), and their hour.
                for minute in 0..<10 {
                    let bucket = hour + Int64(minute) * 60
                    try db.execute(
                        sql: """
                            INSERT INTO call_rollups (tier, bucket, series_id, count, duration_us, request_bytes, response_bytes,
                                sources, d4)
                            VALUES (60, ?, 1, 10, 50000, 0, 1000, 2, 10)
                            """, arguments: [bucket])
                    try db.execute(
                        sql: "INSERT INTO call_rollup_latency VALUES (60, ?, 1, 400, 6), (60, ?, 1, 420, 4)",
                        arguments: [bucket, bucket])
                }
                try db.execute(
                    sql: """
                        INSERT INTO call_rollups (tier, bucket, series_id, count, duration_us, request_bytes, response_bytes,
                            sources, d4)
                        VALUES (3600, ?, 1, 100, 500000, 0, 10000, 2, 100);
                        INSERT INTO call_rollup_latency VALUES (3600, ?, 1, 400, 60), (3600, ?, 1, 420, 40);
                        """, arguments: [hour, hour, hour])
                for i in 0..<3 {
                    try db.execute(
                        sql: """
                            INSERT INTO tcp_connections (conn_key, ts_us, reporter, proxy_id, peer_id, service_id, duration_us,
                                latency_bucket, received_bytes, sent_bytes, response_flags, security_policy, sources, paired)
                            VALUES (?, ?, 0, 1, 2, 1, 20000, 500, 10, 200, '-', 'unknown', 4, 1)
                            """, arguments: [i, (hour + 60 * Int64(i)) * 1_000_000])
                }
            }
        }

        let database = try SextantDatabase(configuration: .init(directory: folder), logger: Logger.quiet)
        #expect(
            try database.appliedMigrations().suffix(8)
                == [
                    "0007_rollup_sketch_blobs_and_tiers", "0008_span_blocks", "0009_calls_without_random_key_indexes",
                    "0010_call_examples", "0011_call_blocks", "0012_call_blocks_rolled_up_and_row_ids",
                    "0013_metric_chunks", "0014_istio_counters",
                ])
        let tiers = try await database.pool.read { db in
            try Row.fetchAll(db, sql: "SELECT tier, count(*), sum(count) FROM call_rollups GROUP BY tier ORDER BY tier")
                .map { [$0[0], $0[1], $0[2]] as [Int] }
        }
        // Requests: 10 minute rows, 2 five-minute rows, one of each coarser tier; TCP: 3 minutes, one bucket of each coarser tier.
        #expect(tiers == [[60, 13, 103], [300, 3, 103], [600, 2, 103], [3600, 2, 103], [86_400, 2, 103]])

        // Ten whole minutes read from the new 10-minute tier, with the sketch intact.
        let calls = try await database.callAggregates(fromMicros: hour * 1_000_000, toMicros: (hour + 600) * 1_000_000)
        #expect(calls.count == 1)
        #expect(calls.first?.count == 100)
        #expect(calls.first?.latency.counts == [400: 60, 420: 40])
        #expect(calls.first?.durationMicrosSum == 500_000)
        // TCP answers from its rollups once its raw rows are gone.
        try await database.pool.write { try $0.execute(sql: "DELETE FROM tcp_connections") }
        let connections = try await database.connectionAggregates(
            fromMicros: hour * 1_000_000, toMicros: (hour + 600) * 1_000_000)
        #expect(connections.map(\.count) == [3])
        #expect(connections.first?.latency.counts == [500: 3])
        #expect(try await database.istioTotals(atMicros: .max).requests.map(\.count) == [100])
        #expect(try await database.istioTotals(atMicros: .max).connections.map(\.connections) == [3])
    }

    /// A database written before migration 0010 keeps its graph's example traces: they are
    /// gathered from the stored calls.
    @Test func callExamplesMigrationGathersTheExamplesOfStoredCalls() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sextant-migrate-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let minute: Int64 = 1_795_698_000
        do {
            let queue = try Self.olderDatabase(in: folder, migrationsBefore: "0010", count: 9)
            try await queue.write { db in
                try Self.insertShopDictionaries(db)
                // Four traced calls of one edge in one minute (two failed), one without a trace.
                for (i, (code, millis, trace)) in [(200, 30, "a"), (503, 10, "b"), (200, 50, "c"), (404, 5, "d"), (200, 90, nil)]
                    .enumerated()
                {
                    try db.execute(
                        sql: """
                            INSERT INTO requests (call_key, ts_us, reporter, proxy_id, service_id, protocol, response_code,
                                response_flags, security_policy, duration_us, latency_bucket, request_bytes, response_bytes,
                                trace_id, sources)
                            VALUES (?, ?, 0, 1, 1, 0, ?, '-', 'unknown', ?, 0, 0, 0, ?, 1)
                            """,
                        arguments: [i, (minute + Int64(i)) * 1_000_000, code, millis * 1000, trace.map { String(repeating: $0, count: 32) }])
                }
            }
        }
        let database = try SextantDatabase(configuration: .init(directory: folder), logger: Logger.quiet)
        let examples = try await database.callExamples(fromMicros: minute * 1_000_000, toMicros: (minute + 60) * 1_000_000)
        #expect(examples.filter { !$0.isError }.map(\.traceID) == [String(repeating: "c", count: 32)])
        #expect(examples.filter(\.isError).map(\.traceID) == [String(repeating: "d", count: 32)])
    }

    /// A database written before migration 0011 (a `requests` row per call) keeps its calls in
    /// blocks after it: the same calls with the same ids, the same raw aggregates, and an index of
    /// recent calls rebuilt from them, so a report arriving after the upgrade pairs with a call
    /// stored before it.
    @Test func callBlocksMigrationKeepsEveryCallAndItsPairing() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sextant-migrate-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let start = Int64(Date().timeIntervalSince1970) * 1_000_000 - 10_000_000
        let trace = String(repeating: "ab", count: 16)
        let before: [[String: Int]]
        do {
            let queue = try Self.olderDatabase(in: folder, migrationsBefore: "0011", count: 10)
            before = try await queue.write { db in
                try Self.insertShopDictionaries(db)
                // A paired call (ids 7 and 8, both sides), an unpaired one (9) waiting for its
                // inbound side, and an untraced one (12) after a gap in the ids.
                let rows: [(Int64, Int, Int64?, Int, String?, String?, String?, Int)] = [
                    (7, 0, 2, 200, "r-7", trace, "00000000000000a7", 1),
                    (8, 1, 1, 200, "r-7", trace, "00000000000000b8", 1),
                    (9, 0, nil, 503, "r-9", trace, "00000000000000c9", 0),
                    (12, 0, nil, 200, nil, nil, nil, 0),
                ]
                for (i, row) in rows.enumerated() {
                    try db.execute(
                        sql: """
                            INSERT INTO requests (id, call_key, ts_us, reporter, proxy_id, peer_id, service_id, protocol,
                                response_code, response_flags, security_policy, duration_us, latency_bucket, request_bytes,
                                response_bytes, request_id, trace_id, span_id, local_addr, remote_addr, sources, paired)
                            VALUES (?, ?, ?, ?, ?, ?, 1, 0, ?, '-', 'unknown', ?, 0, 10, 20, ?, ?, ?, '10.0.0.2:9080', NULL, 2, ?)
                            """,
                        arguments: [
                            row.0, 1000 + row.0, start + Int64(i) * 1000, row.1, row.1 == 0 ? 1 : 2, row.2, row.3,
                            (i + 1) * 1500, row.4, row.5, row.6, row.7,
                        ])
                }
                return try Row.fetchAll(
                    db, sql: "SELECT reporter, response_code, paired, count(*) AS n FROM requests GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
                ).map { ["reporter": $0[0], "code": $0[1], "paired": $0[2], "n": $0[3]] }
            }
        }
        let database = try SextantDatabase(configuration: .init(directory: folder), logger: Logger.quiet)
        let calls = try await database.everyCall()
        #expect(calls.map(\.rowID) == [7, 8, 9, 12])
        #expect(calls.map(\.requestIDHash) == ["r-7", "r-7", "r-9", nil].map { $0.map(StoredCall.hash(requestID:)) })
        #expect(calls.map(\.traceID?.hex) == [trace, trace, trace, nil])
        #expect(calls[2].spanID?.hex == "00000000000000c9")
        let tables = try await database.pool.read { try String.fetchAll($0, sql: "SELECT name FROM sqlite_master WHERE type = 'table'") }
        #expect(!tables.contains("requests"))
        // The rows' rollups were written with them: no block waits for its rollups (0012).
        let unmarked = try await database.pool.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM call_blocks_not_rolled_up") }
        #expect(unmarked == 0)
        let aggregates = try await database.rawCallAggregates(fromMicros: 0, toMicros: .max)
        var after: [[String: Int]: Int] = [:]
        for a in aggregates {
            after[["reporter": a.reporter.rawValue, "code": a.responseCode, "paired": a.paired ? 1 : 0], default: 0] += a.count
        }
        #expect(after == Dictionary(uniqueKeysWithValues: before.map { row in
            (row.filter { $0.key != "n" }, row["n"]!)
        }))
        // The inbound side of call 9 arrives after the upgrade: it pairs, and it is a new call
        // with an id above every migrated one.
        let inbound = ShopMesh.call(.destination, at: start + 2500, durationMicros: 2000, code: 503, requestID: "r-9")
        let summary = try await database.write([IngestBatch(requests: [inbound])])
        #expect(summary.requestsStored == 1 && summary.requestsPaired == 1)
        let now = try await database.everyCall()
        #expect(now.map(\.rowID) == [7, 8, 9, 12, 13])
        #expect(now.map(\.paired) == [true, true, true, false, true])
    }
}

extension MigrationTests {
    /// Series and samples stored one row each before migration 0013 are read back from series
    /// blocks and chunks after it, with their ids; the series' newest sample and counter state are
    /// kept, and of the rollups only the hour tier.
    @Test func metricChunksMigrationKeepsEverySample() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sextant-migrate-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let start: Int64 = 1_795_698_000_000
        do {
            let queue = try Self.olderDatabase(in: folder, migrationsBefore: "0013", count: 12)
            try await queue.write { db in
                try db.execute(sql: """
                    INSERT INTO metric_series (id, name, family, kind, labels) VALUES
                        (4, 'rq', 'rq', 0, '{"pod":"a"}'), (9, 'active', 'active', 1, '{"pod":"a"}');
                    INSERT INTO metric_latest VALUES (4, \(start + 299 * 15_000), 1299, 299, 1000), (9, \(start), 3.5, 3.5, 0);
                    INSERT INTO metric_samples VALUES (9, \(start), 3.5);
                    INSERT INTO metric_rollups VALUES (300, 1, 4, 0, 0, 0, 1, 0, 0), (60, 1, 4, 0, 0, 0, 1, 0, 0), (3600, 0, 4, 0, 0, 0, 1, 0, 0);
                    """)
                for i in 0..<300 {
                    try db.execute(sql: "INSERT INTO metric_samples VALUES (4, ?, ?)", arguments: [start + Int64(i) * 15_000, Double(1000 + i)])
                }
            }
        }
        let database = try SextantDatabase(configuration: .init(directory: folder), logger: Logger.quiet)
        let samples = try await database.samples(seriesIDs: [4, 9], fromMs: 0, toMs: .max)
        #expect(samples[4]?.map(\.1) == (0..<300).map { Double(1000 + $0) })
        #expect(samples[9]?.map(\.0) == [start])
        #expect(try await database.pool.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM metric_chunks") } == 4)
        #expect(try await database.pool.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM metric_rollups") } == 1)
        #expect(try await database.series(named: ["rq", "active"]).map(\.id).sorted() == [4, 9])
        // The counter goes on from its offset: a sender reset after the migration is bridged.
        _ = try await database.write([
            IngestBatch(metrics: [MetricPoint(name: "rq", kind: .counter, labels: [MetricLabelPair("pod", "a")], value: 5, timestampMs: start + 300 * 15_000)])
        ])
        #expect(try await database.latestSamples(sinceMs: 0, names: ["rq"]).map(\.value) == [1304])
    }
}
