import Foundation
import GRDB
import Logging
import SextantModel
import SextantStore
import Testing

@Suite struct IngestWriterStorageTests {
    static func spans(_ n: Int, from first: Int) -> IngestBatch {
        IngestBatch(spans: (first..<(first + n)).map { i in
            Span(
                traceID: TraceID(high: 0, low: UInt64(i + 1)), spanID: SpanID(UInt64(i + 1)), kind: .server,
                name: "GET /items/\(i)", startMicros: 1_795_706_850_000_000 + Int64(i), durationMicros: 1000,
                localEndpoint: Span.Endpoint(serviceName: "api"),
                tags: ["http.url": "http://api/items/\(i)?" + String(repeating: "q", count: 200)])
        })
    }

    /// Writes batches through a writer until a commit fails, and returns that failure and what was stored.
    static func fill(_ writer: IngestWriter) async throws -> (StoreError, stored: Int) {
        var stored = 0
        for round in 0..<1000 {
            do {
                _ = try await writer.write(spans(200, from: round * 200))
                stored += 200
            } catch let error as StoreError {
                return (error, stored)
            }
        }
        Issue.record("the capped database never filled")
        throw CancellationError()
    }

    @Test func aFullDatabaseRefusesAsStorageFullKeepsReadsAndTakesDataOnceSpaceIsFreed() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sextant-test-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var configuration = SextantDatabase.Configuration(directory: folder)
        configuration.maxDatabaseBytes = 2 << 20
        let database = try SextantDatabase(configuration: configuration, logger: Logger.quiet)
        let writer = IngestWriter(database: database, logger: Logger.quiet)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await writer.run() }
            let (error, stored) = try await Self.fill(writer)
            #expect(error.code == .storageFull)
            #expect(error.message.contains("--max-db-size"))
            #expect(stored > 0)
            // Nothing of the failed commit is there, everything before it is, and reads go on.
            let count = try await database.rowCounts().spans
            #expect(count == stored)
            #expect(try await database.pool.read { try String.fetchOne($0, sql: "PRAGMA integrity_check") } == "ok")

            try await database.pool.write { try $0.execute(sql: "DELETE FROM span_blocks") }
            _ = try await writer.write(Self.spans(10, from: 1_000_000))
            group.cancelAll()
        }
    }

    /// Linux refuses to remount a file system read-only while a process writes to it, so the
    /// writer's connection is made read-only instead (`PRAGMA query_only`): SQLite answers
    /// `SQLITE_READONLY` as it does for a read-only file.
    @Test func aReadOnlyDatabaseRefusesAsReadOnlyAndTakesDataOnceWritable() async throws {
        try await withTemporaryDatabase { database, _ in
            let writer = IngestWriter(database: database, logger: Logger.quiet)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await writer.run() }
                _ = try await writer.write(Self.spans(10, from: 0))
                try await database.pool.writeWithoutTransaction { try $0.execute(sql: "PRAGMA query_only = 1") }
                await #expect {
                    _ = try await writer.write(Self.spans(10, from: 10))
                } throws: { ($0 as? StoreError)?.code == .readOnly }
                let count = try await database.rowCounts().spans
                #expect(count == 10)
                try await database.pool.writeWithoutTransaction { try $0.execute(sql: "PRAGMA query_only = 0") }
                _ = try await writer.write(Self.spans(10, from: 20))
                let after = try await database.rowCounts().spans
                #expect(after == 20)
                group.cancelAll()
            }
        }
    }
}
