import GRDB
import Logging
import ServiceLifecycle
import SextantModel
import SextantStore
import Testing

/// What a graceful shutdown (SIGTERM in `sextant serve`) does to the writer: everything queued is
/// committed and answered, the call rollups held in memory are written, and what comes later is
/// refused as `unavailable`, never lost after an answer.
@Suite struct IngestWriterShutdownTests {
    @Test func aGracefulShutdownCommitsWhatIsQueuedWritesTheRollupsAndThenRefuses() async throws {
        try await withTemporaryDatabase { database, _ in
            let writer = IngestWriter(database: database, configuration: .init(), logger: Logger.quiet)
            let batches = try zipkinFixtureBatches()
            let group = ServiceGroup(
                configuration: .init(services: [.init(service: writer)], logger: Logger.quiet))
            var stored = 0
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                // The first commit's rollups are written with it; the next wait in memory for
                // about a second: the shutdown comes before that.
                stored += try await writer.write(batches[0]).spansStored
                let receipts = try batches.dropFirst().map { try writer.submit(PreparedBatch($0)) }
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
                for receipt in receipts { stored += try await receipt.committed().spansStored }
            }
            #expect(stored == batches.reduce(0) { $0 + $1.spans.count })
            let rolledUp = try await database.pool.read { db in
                try Int.fetchOne(db, sql: "SELECT sum(count) FROM call_rollups WHERE tier = 60") ?? 0
            }
            let calls = try await database.rawCallAggregates(fromMicros: 0, toMicros: .max).reduce(0) { $0 + $1.count }
            #expect(calls > 0)
            #expect(rolledUp == calls)
            #expect {
                _ = try writer.submit(PreparedBatch(IngestWriterTests.span(1)))
            } throws: { error in
                let error = error as? StoreError
                return error?.code == .unavailable && error?.message == "shutting down"
            }
        }
    }

    @Test func aBatchTakenDuringTheLastCommitIsStillCommitted() async throws {
        try await withTemporaryDatabase { database, _ in
            let writer = IngestWriter(database: database, configuration: .init(), logger: Logger.quiet)
            let group = ServiceGroup(
                configuration: .init(services: [.init(service: writer)], logger: Logger.quiet))
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                // Batches queued while the writer runs, the shutdown right behind them.
                let receipts = try (0..<50).map { try writer.submit(PreparedBatch(IngestWriterTests.span($0))) }
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
                for receipt in receipts { _ = try await receipt.committed() }
            }
            #expect(try await IngestWriterTests.storedSpanOrder(database).count == 50)
        }
    }
}
