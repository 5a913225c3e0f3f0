import Foundation
import GRDB
import Logging
import SextantModel
@testable import SextantStore
import Synchronization
import Testing

/// Istio's counters as `/metrics` exposes them: counted once the grace has passed, never
/// decreasing through late pairings, retention and restarts.
@Suite struct IstioCountersTests {
    private static let grace: Int64 = 15_000_000

    /// Calls per (reporter, source, destination, code), from the exposed totals.
    private static func counts(_ totals: IstioTotals) -> [String: Int] {
        var out: [String: Int] = [:]
        for s in totals.requests {
            out["\(s.reporter) \(s.source.workload)->\(s.destination.workload) \(s.responseCode)", default: 0] += s.count
        }
        return out
    }

    /// True when no series of `before` is smaller (or gone) in `after`.
    private static func grew(from before: [String: Int], to after: [String: Int]) -> Bool {
        before.allSatisfy { key, value in (after[key] ?? 0) >= value }
    }

    private static func calls(_ reporter: Reporter, count: Int, at start: Int64, code: Int = 200) -> [CallReport] {
        (0..<count).map { i in
            ShopMesh.call(reporter, at: start + Int64(i) * 1000, code: code, requestID: "req-\(start)-\(i)")
        }
    }

    @Test func aLatePairingLeavesTheCountersWhereTheCallSettled() async throws {
        try await withTemporaryDatabase { database, _ in
            let t = SextantDatabase.nowMicros()
            _ = try await database.write([IngestBatch(requests: Self.calls(.source, count: 40, at: t))])
            let settled = Self.counts(try await database.istioTotals(atMicros: t + 2 * Self.grace))
            #expect(settled == ["source web-v1->unknown 200": 40])
            // The callee's reports come after the grace: the rollups move the calls to the known
            // peer, the counters keep them where they were counted and add the callee's side.
            let paired = try await database.write([IngestBatch(requests: Self.calls(.destination, count: 40, at: t))])
            #expect(paired.requestsPaired == 40)
            let later = Self.counts(try await database.istioTotals(atMicros: t + 4 * Self.grace))
            #expect(later == ["source web-v1->unknown 200": 40, "destination web-v1->api-v1 200": 40])
            #expect(Self.grew(from: settled, to: later))
            let rollups = try await database.callAggregates(fromMicros: t - 60_000_000, toMicros: t + 60_000_000)
            #expect(edgeCounts(rollups) == ["web-v1->api-v1": 40])
        }
    }

    @Test func aPairingWithinTheGraceMovesTheCallBeforeItIsCounted() async throws {
        try await withTemporaryDatabase { database, _ in
            let t = SextantDatabase.nowMicros()
            _ = try await database.write([IngestBatch(requests: Self.calls(.source, count: 30, at: t, code: 503))])
            // Not due yet: nothing counted, so nothing to take back when the other side comes.
            #expect(Self.counts(try await database.istioTotals(atMicros: t)).isEmpty)
            _ = try await database.write([IngestBatch(requests: Self.calls(.destination, count: 30, at: t, code: 503))])
            let totals = try await database.istioTotals(atMicros: t + 3 * Self.grace)
            #expect(
                Self.counts(totals) == ["source web-v1->api-v1 503": 30, "destination web-v1->api-v1 503": 30])
            let source = totals.requests.first { $0.reporter == .source }
            #expect(source?.durationBuckets.last == 30)
            #expect(source?.durationMillisSum == 90)
        }
    }

    @Test func countersSurviveARestartWithoutCountingTwice() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sextant-test-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let t = SextantDatabase.nowMicros()
        var expected: [String: Int] = [:]
        do {
            let database = try SextantDatabase(configuration: .init(directory: folder), logger: .quiet)
            _ = try await database.write([IngestBatch(requests: Self.calls(.source, count: 20, at: t))])
            expected = Self.counts(try await database.istioTotals(atMicros: t + 2 * Self.grace))
            #expect(expected == ["source web-v1->unknown 200": 20])
            // Stored, not yet counted, when the process goes.
            _ = try await database.write([IngestBatch(requests: Self.calls(.source, count: 5, at: t + 1_000_000))])
        }
        let database = try SextantDatabase(configuration: .init(directory: folder), logger: .quiet)
        // The settled counters are there at once; the five calls count once their grace has passed.
        #expect(Self.counts(try await database.istioTotals(atMicros: t)) == expected)
        let later = SextantDatabase.nowMicros() + 2 * Self.grace
        #expect(Self.counts(try await database.istioTotals(atMicros: later)) == ["source web-v1->unknown 200": 25])
        _ = try await database.write([IngestBatch(requests: Self.calls(.source, count: 1, at: t + 2_000_000))])
        #expect(Self.counts(try await database.istioTotals(atMicros: later + 2 * Self.grace)) == ["source web-v1->unknown 200": 26])
    }

    @Test func retentionNeverTakesFromTheCountersUntilASeriesIsIdle() async throws {
        try await withTemporaryDatabase { database, _ in
            let now = SextantDatabase.nowMicros() / 1_000_000
            let twoDaysAgo = (now - 2 * 86_400) * 1_000_000
            _ = try await database.write([IngestBatch(requests: Self.calls(.source, count: 12, at: twoDaysAgo))])
            _ = try await database.write([IngestBatch(requests: Self.calls(.source, count: 3, at: now * 1_000_000, code: 500))])
            let before = Self.counts(try await database.istioTotals(atMicros: (now + 60) * 1_000_000))
            #expect(before == ["source web-v1->unknown 200": 12, "source web-v1->unknown 500": 3])
            var config = RetentionService.Configuration()
            config.rawSeconds = 3600
            config.minuteSeconds = 3600
            config.hourSeconds = 3600
            let clock = Mutex(now + 60)
            let retention = RetentionService(
                database: database, configuration: config, logger: .quiet, now: { clock.withLock { $0 } })
            try await retention.enforce()
            // The old calls' daily rollups are gone; the counters are not.
            let daily = try await database.pool.read { db in
                try Int.fetchOne(db, sql: "SELECT count(*) FROM call_rollups WHERE tier = 86400")
            }
            #expect(daily == 1)
            #expect(Self.counts(try await database.istioTotals(atMicros: (now + 60) * 1_000_000)) == before)
            // A series that has not grown for the hour horizon goes, as its rollups do.
            clock.withLock { $0 = now + 2 * 3600 }
            try await retention.enforce()
            #expect(try await database.istioTotals(atMicros: (now + 2 * 3600) * 1_000_000).requests.isEmpty)
        }
    }

    @Test func callsAnotherProcessStoresAreCountedToo() async throws {
        try await withTemporaryDatabase { database, folder in
            let t = SextantDatabase.nowMicros()
            _ = try await database.write([IngestBatch(requests: Self.calls(.source, count: 4, at: t))])
            #expect(Self.counts(try await database.istioTotals(atMicros: t + 2 * Self.grace)).values.reduce(0, +) == 4)
            // `sextant import` writes beside the server, rolling up every commit.
            var configuration = SextantDatabase.Configuration(directory: folder)
            configuration.rollupsInEveryCommit = true
            let importer = try SextantDatabase(configuration: configuration, logger: .quiet)
            _ = try await importer.write([IngestBatch(requests: Self.calls(.destination, count: 7, at: t - 3_600_000_000))])
            let connection = TCPConnection(
                reporter: .source, proxy: ShopMesh.web, service: ShopMesh.apiService, startMicros: t, durationMicros: 10,
                receivedBytes: 5, sentBytes: 9, localAddress: "10.0.0.1:4000", remoteAddress: "10.0.0.2:27017",
                channel: .als)
            _ = try await importer.write([IngestBatch(connections: [connection])])
            // It keeps no counters of its own: the server's one series is all the table holds.
            #expect(try await importer.pool.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM istio_counters") } == 1)
            // The server notices them at a scrape and counts them once their grace has passed.
            let now = SextantDatabase.nowMicros()
            _ = try await database.istioTotals(atMicros: now)
            let totals = try await database.istioTotals(atMicros: now + 2 * Self.grace)
            #expect(Self.counts(totals) == ["source web-v1->unknown 200": 4, "destination unknown->api-v1 200": 7])
            #expect(totals.connections.map(\.sentBytes) == [9])
        }
    }
}
