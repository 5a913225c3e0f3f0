import Foundation
import GRDB
import Logging
import SextantModel
@testable import SextantStore
import Testing

@Suite struct PendingRollupsTests {
    /// Per (reporter, source → destination, code, paired): calls and summed duration.
    private func totals(_ aggregates: [CallAggregate]) -> [String: [Int64]] {
        var out: [String: [Int64]] = [:]
        for a in aggregates {
            let key = "\(a.reporter) \(a.proxy.workload)->\(a.peer?.workload ?? "?") \(a.responseCode) \(a.paired)"
            let sums = out[key] ?? [0, 0]
            out[key] = [sums[0] + Int64(a.count), sums[1] + a.durationMicrosSum]
        }
        return out
    }

    /// The rollups of calls committed but not yet written to the rollup rows (the process was
    /// killed) are folded in again from the call blocks past the watermark when the database is
    /// next written or read: the rollups equal the raw calls, with no call counted twice.
    @Test func rollupsNotWrittenBeforeACrashAreFoldedInFromTheBlocks() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sextant-test-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let t = Int64(Date().timeIntervalSince1970) * 1_000_000 - 600_000_000
        func outbound(_ range: Range<Int>) -> [CallReport] {
            range.map { i in
                ShopMesh.call(
                    .source, at: t + Int64(i) * 3_000_000, durationMicros: 1000 + Int64(i), code: i % 7 == 0 ? 503 : 200,
                    requestID: "q\(i)")
            }
        }
        func inbound(_ range: Range<Int>) -> [CallReport] {
            outbound(range).map { o in
                ShopMesh.call(
                    .destination, at: o.startMicros + 300, durationMicros: o.durationMicros - 200, code: o.responseCode,
                    requestID: o.requestID!)
            }
        }
        do {
            let first = try SextantDatabase(configuration: .init(directory: folder), logger: Logger.quiet)
            _ = try await first.write([IngestBatch(requests: outbound(0..<100))])
            _ = try await first.write([IngestBatch(requests: inbound(0..<40))])
            // Written: these calls' rollups are in the rows, up to the watermark.
            try await first.flushRollups()
            // Not written: new calls, and calls written before that are now paired.
            _ = try await first.write([IngestBatch(requests: inbound(40..<90) + outbound(100..<130))])
            #expect(first.pendingRollups.withLock { $0?.isPending } == true)
            // The process dies here: the second instance never saw the first's memory.
        }
        let second = try SextantDatabase(configuration: .init(directory: folder), logger: Logger.quiet)
        let raw = totals(try await second.rawCallAggregates(fromMicros: 0, toMicros: .max))
        #expect(raw.values.reduce(0) { $0 + $1[0] } == 220)
        let rolled = totals(try await second.callAggregates(fromMicros: t - 3_600_000_000, toMicros: t + 3_600_000_000))
        #expect(rolled == raw)
        // The next write starts from what the read wrote: nothing is counted twice.
        _ = try await second.write([IngestBatch(requests: inbound(90..<130))])
        let all = totals(try await second.rawCallAggregates(fromMicros: 0, toMicros: .max))
        #expect(all.values.reduce(0) { $0 + $1[0] } == 260)
        #expect(totals(try await second.callAggregates(fromMicros: t - 3_600_000_000, toMicros: t + 3_600_000_000)) == all)
        try await second.flushRollups()
        let unmarked = try await second.pool.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM call_blocks_not_rolled_up") }
        #expect(unmarked == 0)
    }

    private static var tenMinutesAgo: Int64 { Int64(Date().timeIntervalSince1970) * 1_000_000 - 600_000_000 }

    /// One side's reports of calls `range`, a second apart from `t`, request ids `r<i>`.
    private static func calls(_ side: Reporter, _ range: Range<Int>, from t: Int64) -> [CallReport] {
        range.map { i in ShopMesh.call(side, at: t + Int64(i) * 1_000_000, durationMicros: 800, requestID: "r\(i)") }
    }

    /// Folding in a block that pairs calls finds their versions before in older blocks, past a
    /// block of revisions alone (a resend from another channel), whose calls are all older.
    @Test func replayFindsVersionsBeforeBehindABlockOfRevisionsAlone() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sextant-test-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let t = Self.tenMinutesAgo
        let calls = { (side: Reporter, range: Range<Int>) in Self.calls(side, range, from: t) }
        do {
            let first = try SextantDatabase(configuration: .init(directory: folder), logger: Logger.quiet)
            _ = try await first.write([IngestBatch(requests: calls(.source, 0..<10))])
            // The first three again, from another channel: they gain a source, nothing else.
            let resent = calls(.source, 0..<3).map { call in
                var call = call
                call.channel = .otlpLogs
                return call
            }
            _ = try await first.write([IngestBatch(requests: resent)])
            try await first.flushRollups()
            // Calls 5..<8 are paired by a commit whose rollups the process never writes.
            _ = try await first.write([IngestBatch(requests: calls(.destination, 5..<8))])
        }
        let second = try SextantDatabase(configuration: .init(directory: folder), logger: Logger.quiet)
        let raw = totals(try await second.rawCallAggregates(fromMicros: 0, toMicros: .max))
        #expect(raw.values.reduce(0) { $0 + $1[0] } == 13)
        #expect(totals(try await second.callAggregates(fromMicros: t - 3_600_000_000, toMicros: t + 3_600_000_000)) == raw)
    }

    /// `sextant import` writes the file while `sextant serve` runs: two processes, each with its
    /// own index and rollup changes. Their calls get distinct row ids, and each one's rollups are
    /// written by it, for the blocks it wrote, so the server reads every call once and a restart
    /// folds nothing in twice.
    @Test func twoWritersOfOneFileShareNoRowIDAndCountEveryCallOnce() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sextant-test-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let t = Self.tenMinutesAgo
        let calls = { (side: Reporter, range: Range<Int>) in Self.calls(side, range, from: t) }
        let server = try SextantDatabase(configuration: .init(directory: folder), logger: Logger.quiet)
        _ = try await server.write([IngestBatch(requests: calls(.source, 0..<50))])
        var importing = SextantDatabase.Configuration(directory: folder)
        importing.rollupsInEveryCommit = true
        let importer = try SextantDatabase(configuration: importing, logger: Logger.quiet)
        // The importer pairs the server's earlier calls; the server goes on meanwhile.
        _ = try await importer.write([IngestBatch(requests: calls(.destination, 0..<30))])
        _ = try await server.write([IngestBatch(requests: calls(.source, 50..<80))])
        _ = try await importer.write([IngestBatch(requests: calls(.destination, 80..<100))])
        // The importer left nothing unwritten; the server writes its own.
        #expect(importer.pendingRollups.withLock { $0?.isPending } == false)
        try await server.flushRollups()

        let stored = try await server.everyCall()
        #expect(stored.count == 130)
        #expect(Set(stored.map(\.rowID)).count == 130)
        #expect(stored.filter(\.paired).count == 60)
        let raw = totals(try await server.rawCallAggregates(fromMicros: 0, toMicros: .max))
        let window = (t - 3_600_000_000, t + 3_600_000_000)
        #expect(totals(try await server.callAggregates(fromMicros: window.0, toMicros: window.1)) == raw)
        // A restart replays the blocks past the watermark: none that the rollups hold already.
        let restarted = try SextantDatabase(configuration: .init(directory: folder), logger: Logger.quiet)
        #expect(totals(try await restarted.callAggregates(fromMicros: window.0, toMicros: window.1)) == raw)
    }

    /// A commit that fails leaves the changes in memory unknown: the next write folds them in
    /// again from the blocks, so the failed commit's calls are never counted and the earlier
    /// ones are counted once.
    @Test func aFailedCommitsRollupChangesAreNotKept() async throws {
        try await withTemporaryDatabase { database, _ in
            let t = Int64(Date().timeIntervalSince1970) * 1_000_000 - 60_000_000
            let calls = (0..<10).map { i in
                ShopMesh.call(.source, at: t + Int64(i) * 1000, durationMicros: 500, requestID: "f\(i)")
            }
            _ = try await database.write([IngestBatch(requests: Array(calls.prefix(5)))])
            // The next commit fails at its end (a trigger refuses its call block).
            try await database.pool.write {
                try $0.execute(
                    sql: "CREATE TEMP TRIGGER refuse BEFORE INSERT ON call_blocks BEGIN SELECT RAISE(ABORT, 'refused'); END")
            }
            await #expect(throws: (any Error).self) {
                _ = try await database.write([IngestBatch(requests: Array(calls.suffix(5)))])
            }
            #expect(database.pendingRollups.withLock { $0 == nil })
            try await database.pool.write { try $0.execute(sql: "DROP TRIGGER temp.refuse") }
            let counted = try await database.callAggregates(fromMicros: t - 60_000_000, toMicros: t + 60_000_000)
            #expect(counted.reduce(0) { $0 + $1.count } == 5)
            _ = try await database.write([IngestBatch(requests: Array(calls.suffix(5)))])
            let after = try await database.callAggregates(fromMicros: t - 60_000_000, toMicros: t + 60_000_000)
            #expect(after.reduce(0) { $0 + $1.count } == 10)
        }
    }
}
