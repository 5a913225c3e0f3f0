import Foundation
import Logging
import SextantFixtures
import SextantIngest
import SextantModel
@testable import SextantStore
import Testing

/// A database in a fresh temporary folder, removed afterwards.
func withTemporaryDatabase<T>(_ body: (SextantDatabase, String) async throws -> T) async throws -> T {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sextant-test-\(UUID().uuidString)").path
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let database = try SextantDatabase(configuration: .init(directory: folder), logger: Logger.quiet)
    return try await body(database, folder)
}

/// A small mesh for store tests: web-v1 calls the api service, which api-v1 answers.
enum ShopMesh {
    static let web = WorkloadIdentity(namespace: "shop", workload: "web-v1", app: "web", version: "v1")
    static let api = WorkloadIdentity(namespace: "shop", workload: "api-v1", app: "api", version: "v1")
    static let apiService = ServiceRef(host: "api.shop.svc.cluster.local", name: "api", namespace: "shop")

    /// A proxy's access-log report of one call to the api service: web-v1's as the source,
    /// api-v1's as the destination.
    static func call(
        _ reporter: Reporter, at micros: Int64, durationMicros: Int64 = 3000, code: Int = 200, requestID: String
    ) -> CallReport {
        CallReport(
            reporter: reporter, proxy: reporter == .source ? web : api, service: apiService, startMicros: micros,
            durationMicros: durationMicros, responseCode: code, requestID: requestID, channel: .accessLog)
    }
}

func zipkinFixtureBatches() throws -> [IngestBatch] {
    try Fixtures.files(in: "envoy/zipkin", suffix: ".json").map { try ZipkinV2Decoder().decode(json: Fixtures.bytes($0)) }
}

func accessLogFixtureBatches() throws -> [IngestBatch] {
    try Fixtures.workloads.map { workload in
        let proxy = NodeIdentity(nodeID: try Fixtures.nodeID(workload: workload))!.workload
        return EnvoyAccessLogDecoder(defaultProxy: proxy)
            .decode(lines: try Fixtures.bytes("envoy/access-log/\(workload).jsonl"))
    }
}

/// (source workload, destination workload) → counted calls, from aggregates.
func edgeCounts(_ aggregates: [CallAggregate]) -> [String: Int] {
    var counts: [String: Int] = [:]
    for a in aggregates where a.isCounted {
        counts["\(a.sourceWorkload.workload)->\(a.destinationWorkload?.workload ?? "?")", default: 0] += a.count
    }
    return counts
}

let fixtureEdges = [
    "unknown->productpage-v1": 50, "productpage-v1->details-v1": 49, "productpage-v1->reviews-v1": 16,
    "productpage-v1->reviews-v2": 17, "productpage-v1->reviews-v3": 16, "reviews-v2->ratings-v1": 17,
    "reviews-v3->ratings-v1": 16,
]

@Suite struct SextantDatabaseTests {
    @Test func appliesEveryMigrationInTheFolderOnceAndRecordsIt() async throws {
        // Every numbered file in migrations/ must ship with the binary (listed in Package.swift).
        let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../migrations").standardized.path
        let files = try FileManager.default.contentsOfDirectory(atPath: folder)
            .filter { $0.hasSuffix(".sql") }.map { String($0.dropLast(4)) }.sorted()
        #expect(files.count >= 2)
        try await withTemporaryDatabase { database, folder in
            #expect(try database.appliedMigrations() == files)
            let again = try SextantDatabase(configuration: .init(directory: folder), logger: Logger.quiet)
            #expect(try again.appliedMigrations() == files)
        }
    }

    @Test func pairsClientAndServerSpansIntoWorkloadEdges() async throws {
        try await withTemporaryDatabase { database, _ in
            let summary = try await database.write(try zipkinFixtureBatches())
            #expect(summary.spansStored == 312)
            #expect(summary.requestsStored == 312)
            #expect(summary.requestsPaired == 131)
            let aggregates = try await database.callAggregates(fromMicros: 0, toMicros: .max)
            #expect(edgeCounts(aggregates) == fixtureEdges)
        }
    }

    @Test func pairsAccessLogsByRequestIDWhateverTheOrder() async throws {
        try await withTemporaryDatabase { database, _ in
            for batch in try accessLogFixtureBatches().reversed() {
                _ = try await database.write([batch])
            }
            let aggregates = try await database.callAggregates(fromMicros: 0, toMicros: .max)
            #expect(edgeCounts(aggregates) == fixtureEdges)
        }
    }

    @Test func countsACallReportedOnTwoChannelsOnce() async throws {
        try await withTemporaryDatabase { database, _ in
            _ = try await database.write(try zipkinFixtureBatches())
            let summary = try await database.write(try accessLogFixtureBatches())
            #expect(summary.requestsMerged == 312)
            #expect(summary.requestsStored == 0)
            let aggregates = try await database.callAggregates(fromMicros: 0, toMicros: .max)
            #expect(edgeCounts(aggregates) == fixtureEdges)
            #expect(aggregates.allSatisfy { $0.sources == [.spans, .accessLog] })
            // A resent batch changes nothing.
            let resent = try await database.write(try zipkinFixtureBatches())
            #expect(resent.spansDuplicate == 312)
            #expect(edgeCounts(try await database.callAggregates(fromMicros: 0, toMicros: .max)) == fixtureEdges)
        }
    }

    /// Merging and pairing find calls through an index in memory: a restarted server rebuilds it
    /// from the rows, so a channel's reports after the restart still merge into the calls stored
    /// before it, and one side's reports pair with the other side's stored before it.
    @Test func mergesAndPairsWithCallsStoredBeforeARestart() async throws {
        try await withTemporaryDatabase { database, folder in
            let batches = try accessLogFixtureBatches()
            let (before, after) = (Array(batches.prefix(2)), Array(batches.dropFirst(2)))
            _ = try await database.write(before)
            let reopened = try SextantDatabase(configuration: .init(directory: folder), logger: Logger.quiet)
            _ = try await reopened.write(after)
            #expect(edgeCounts(try await reopened.callAggregates(fromMicros: 0, toMicros: .max)) == fixtureEdges)
            let again = try SextantDatabase(configuration: .init(directory: folder), logger: Logger.quiet)
            let resent = try await again.write(before)
            #expect(resent.requestsStored == 0)
            #expect(edgeCounts(try await again.callAggregates(fromMicros: 0, toMicros: .max)) == fixtureEdges)
        }
    }

    /// Retention deletes rows the index of recent calls may still hold: a report of a deleted
    /// call is stored anew, never merged into a row that is gone (nor into another call's).
    @Test func aCallWhoseRowWasDeletedIsStoredAgainNotMergedIntoARowReusingItsID() async throws {
        try await withTemporaryDatabase { database, _ in
            let batches = try accessLogFixtureBatches()
            let first = try await database.write([batches[0]])
            let deleted = try await database.pool.write { try database.deleteCalls(before: .max, limit: 1000, $0) }
            #expect(deleted.calls == first.requestsStored)
            _ = try await database.write([batches[1]])
            let again = try await database.write([batches[0]])
            #expect(first.requestsStored > 0)
            #expect(again.requestsStored == first.requestsStored)
            #expect(again.requestsMerged == 0)
        }
    }

    @Test func totalsIstioSeriesPerReporter() async throws {
        try await withTemporaryDatabase { database, _ in
            _ = try await database.write(try zipkinFixtureBatches())
            let series = try await database.istioTotals(atMicros: .max).requests
            let received = Dictionary(
                grouping: series.filter { $0.reporter == .destination }, by: \.destination.workload
            ).mapValues { $0.reduce(0) { $0 + $1.count } }
            #expect(
                received == [
                    "productpage-v1": 50, "details-v1": 49, "reviews-v1": 16, "reviews-v2": 17, "reviews-v3": 16,
                    "ratings-v1": 33,
                ])
            let ratingsErrors = series.filter {
                $0.reporter == .source && $0.destination.workload == "ratings-v1" && $0.responseCode == 500
            }
            #expect(ratingsErrors.map(\.count) == [3])
            #expect(ratingsErrors.first?.source.workload == "reviews-v3")
            let all = series.reduce(0) { $0 + $1.count }
            #expect(series.allSatisfy { $0.durationBuckets.last! <= $0.count })
            #expect(all == 312)
        }
    }

    @Test func countsCallsOnlyOnceTheGraceHasPassed() async throws {
        try await withTemporaryDatabase { database, _ in
            let stored = SextantDatabase.nowMicros()
            _ = try await database.write(try zipkinFixtureBatches())
            // The other side's report of a call may still come until the grace (15 s) has passed.
            #expect(try await database.istioTotals(atMicros: stored + 10_000_000).requests.isEmpty)
            let series = try await database.istioTotals(atMicros: stored + 17_000_000).requests
            #expect(series.reduce(0) { $0 + $1.count } == 312)
        }
    }
}

extension Logger {
    /// Tests log warnings and errors only.
    static var quiet: Logger {
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        return logger
    }
}

extension SextantDatabase {
    /// Calls and spans stored, counted from their blocks (and rows of older databases): what the
    /// store tests check writes against.
    func rowCounts() async throws -> (requests: Int, spans: Int) {
        try await pool.read { db in
            (
                try Int.fetchOne(db, sql: "SELECT coalesce(sum(call_count), 0) FROM call_blocks") ?? 0,
                (try Int.fetchOne(db, sql: "SELECT count(*) FROM spans") ?? 0)
                    + (try Int.fetchOne(db, sql: "SELECT coalesce(sum(span_count), 0) FROM span_blocks") ?? 0)
            )
        }
    }
}
