import Foundation
import GRDB
import Logging
import SextantModel
import SextantStore
import Testing

/// The writer's queue and group commit: order, bounds, refusal, and when senders are answered.
@Suite struct IngestWriterTests {
    /// One span per batch, numbered so its row tells which batch it came from.
    static func span(_ i: Int) -> IngestBatch {
        IngestWriterStorageTests.spans(1, from: i)
    }

    /// Runs `writer` in the background for `body`, then stops it.
    static func running<T>(_ writer: IngestWriter, _ body: () async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await writer.run() }
            defer { group.cancelAll() }
            return try await body()
        }
    }

    /// The ids of the stored spans, block by block in the order they were committed.
    static func storedSpanOrder(_ database: SextantDatabase) async throws -> [String] {
        try await database.pool.read { db in
            try Data.fetchAll(db, sql: "SELECT data FROM span_blocks ORDER BY id")
                .flatMap { try SpanBlock.decode([UInt8]($0)) }.map(\.spanID.hex)
        }
    }

    @Test func commitsQueuedBatchesInOrderAndInGroupsOfAtMostMaxRecords() async throws {
        try await withTemporaryDatabase { database, _ in
            var configuration = IngestWriter.Configuration()
            configuration.maxRecordsPerCommit = 7
            let writer = IngestWriter(database: database, configuration: configuration, logger: Logger.quiet)
            // Queued before the writer runs: they wait together, as batches arriving during a commit do.
            let receipts = try (0..<50).map { try writer.submit(PreparedBatch(Self.span($0))) }
            #expect(writer.statistics.queuedRecords == 50)
            let summaries = try await Self.running(writer) {
                var summaries: [WriteSummary] = []
                for receipt in receipts { summaries.append(try await receipt.committed()) }
                return summaries
            }
            #expect(summaries.allSatisfy { $0.spansStored == 1 })
            let expected = (0..<50).map { String(format: "%016x", $0 + 1) }
            #expect(try await Self.storedSpanOrder(database) == expected)
            let statistics = writer.statistics
            #expect(statistics.commits == 8)
            #expect(statistics.committedRecords == 50)
            #expect(statistics.queuedRecords == 0)
            #expect(statistics.queuedBytes == 0)
            // Seven commits of 7 records (bound 10) and one of 1 (bound 1).
            #expect(statistics.commitsByRecords[0] == 1)
            #expect(statistics.commitsByRecords[1] == 7)
            #expect(statistics.busy > .zero)
        }
    }

    @Test func aCommitHoldsAtMostMaxBytesAndAnOversizedBatchGoesAlone() async throws {
        try await withTemporaryDatabase { database, _ in
            let bytes = PreparedBatch(Self.span(0)).estimatedBytes
            var configuration = IngestWriter.Configuration()
            configuration.maxBytesPerCommit = bytes * 3 + bytes / 2
            let writer = IngestWriter(database: database, configuration: configuration, logger: Logger.quiet)
            var receipts = try (0..<10).map { try writer.submit(PreparedBatch(Self.span($0))) }
            // Forty spans are larger than a commit may hold (even compressed in their block):
            // committed on their own all the same.
            let large = PreparedBatch(IngestWriterStorageTests.spans(40, from: 100))
            #expect(large.estimatedBytes > configuration.maxBytesPerCommit)
            receipts.append(try writer.submit(large))
            #expect(writer.statistics.queuedBytes == bytes * 10 + large.estimatedBytes)
            try await Self.running(writer) {
                for receipt in receipts { _ = try await receipt.committed() }
            }
            // 3 + 3 + 3 + 1, then the large one.
            #expect(writer.statistics.commits == 5)
            #expect(writer.statistics.committedRecords == 50)
            #expect(try await Self.storedSpanOrder(database).count == 50)
        }
    }

    @Test func aFullQueueRefusesByRecordsAndByBytes() async throws {
        try await withTemporaryDatabase { database, _ in
            var byRecords = IngestWriter.Configuration()
            byRecords.maxQueuedRecords = 3
            let writer = IngestWriter(database: database, configuration: byRecords, logger: Logger.quiet)
            // A batch larger than the queue is taken when nothing waits.
            let first = try writer.submit(PreparedBatch(IngestWriterStorageTests.spans(5, from: 0)))
            #expect {
                _ = try writer.submit(PreparedBatch(Self.span(10)))
            } throws: { ($0 as? StoreError)?.code == .overloaded }

            let bytes = PreparedBatch(Self.span(20)).estimatedBytes
            var byBytes = IngestWriter.Configuration()
            byBytes.maxQueuedBytes = bytes * 2
            let bounded = IngestWriter(database: database, configuration: byBytes, logger: Logger.quiet)
            let accepted = try (20..<22).map { try bounded.submit(PreparedBatch(Self.span($0))) }
            #expect {
                _ = try bounded.submit(PreparedBatch(Self.span(22)))
            } throws: { error in
                let error = error as? StoreError
                return error?.code == .overloaded && error?.message.contains("MiB") == true
            }
            #expect(bounded.statistics.queuedRecords == 2)

            // Once the queue is committed it takes batches again.
            try await Self.running(writer) {
                _ = try await first.committed()
                _ = try await writer.write(Self.span(10))
            }
            try await Self.running(bounded) {
                for receipt in accepted { _ = try await receipt.committed() }
                _ = try await bounded.write(Self.span(22))
            }
            #expect(try await Self.storedSpanOrder(database).count == 9)
        }
    }

    @Test func answersOnlyOnceTheBatchIsCommittedAndReadable() async throws {
        try await withTemporaryDatabase { database, _ in
            let writer = IngestWriter(database: database, logger: Logger.quiet)
            let receipt = try writer.submit(PreparedBatch(IngestWriterStorageTests.spans(3, from: 0)))
            try await withThrowingTaskGroup(of: Int.self) { group in
                group.addTask {
                    _ = try await receipt.committed()
                    // Another connection sees the rows the moment the sender is answered.
                    return try await database.rowCounts().spans
                }
                // The writer does not run: the sender waits.
                try await Task.sleep(for: .milliseconds(200))
                #expect(try await database.rowCounts().spans == 0)
                group.addTask {
                    try await writer.run()
                    return -1
                }
                let seen = try await group.next()
                #expect(seen == 3)
                group.cancelAll()
            }
        }
    }

    @Test func aFailedCommitAnswersEveryBatchOfItsGroupWithTheError() async throws {
        try await withTemporaryDatabase { database, _ in
            let writer = IngestWriter(database: database, logger: Logger.quiet)
            try await database.pool.writeWithoutTransaction { try $0.execute(sql: "PRAGMA query_only = 1") }
            let receipts = try (0..<4).map { try writer.submit(PreparedBatch(Self.span($0))) }
            try await Self.running(writer) {
                for receipt in receipts {
                    await #expect {
                        _ = try await receipt.committed()
                    } throws: { ($0 as? StoreError)?.code == .readOnly }
                }
            }
            // One transaction failed for all four; its time counts as busy, no commit does.
            #expect(writer.statistics.commits == 0)
            #expect(writer.statistics.busy > .zero)
            #expect(writer.statistics.queuedRecords == 0)
            try await database.pool.writeWithoutTransaction { try $0.execute(sql: "PRAGMA query_only = 0") }
            #expect(try await Self.storedSpanOrder(database).isEmpty)
        }
    }

    @Test func eachBatchOfAGroupGetsItsOwnSummary() async throws {
        try await withTemporaryDatabase { database, _ in
            let writer = IngestWriter(database: database, logger: Logger.quiet)
            let batch = IngestWriterStorageTests.spans(4, from: 0)
            let first = try writer.submit(PreparedBatch(batch))
            let again = try writer.submit(PreparedBatch(batch))
            let empty = try writer.submit(PreparedBatch(IngestBatch()))
            let summaries = try await Self.running(writer) {
                [try await first.committed(), try await again.committed(), try await empty.committed()]
            }
            #expect(summaries[0].spansStored == 4)
            #expect(summaries[1].spansDuplicate == 4)
            #expect(summaries[2] == WriteSummary())
            #expect(writer.statistics.commits == 1)
        }
    }

    @Test func batchesArrivingSoonAfterACommitShareTheNextOne() async throws {
        try await withTemporaryDatabase { database, _ in
            var configuration = IngestWriter.Configuration()
            configuration.commitInterval = .seconds(2)
            let writer = IngestWriter(database: database, configuration: configuration, logger: Logger.quiet)
            let start = ContinuousClock.now
            var inTime = true
            try await Self.running(writer) {
                _ = try await writer.write(PreparedBatch(Self.span(0)))
                // The second batch would find the writer idle; it waits for the interval instead,
                // and the third, 50 ms later, goes with it.
                let second = try writer.submit(PreparedBatch(Self.span(1)))
                try await Task.sleep(for: .milliseconds(50))
                let third = try writer.submit(PreparedBatch(Self.span(2)))
                // On a machine too busy to submit both within the interval of the first commit's
                // start, the second is rightly committed alone.
                inTime = ContinuousClock.now - start < configuration.commitInterval
                _ = try await second.committed()
                _ = try await third.committed()
            }
            let commits = writer.statistics.commits
            #expect(inTime ? commits == 2 : (2...3).contains(commits), "\(commits) commits")
            #expect(try await Self.storedSpanOrder(database) == (1...3).map { String(format: "%016x", $0) })
        }
    }

    @Test func aBatchAfterAQuietSpellIsCommittedAtOnce() async throws {
        try await withTemporaryDatabase { database, _ in
            var configuration = IngestWriter.Configuration()
            configuration.commitInterval = Self.senderInterval
            let writer = IngestWriter(database: database, configuration: configuration, logger: Logger.quiet)
            let waited = try await Self.running(writer) {
                _ = try await writer.write(PreparedBatch(Self.span(0)))
                try await Task.sleep(for: Self.senderInterval + .milliseconds(100))
                let start = ContinuousClock.now
                _ = try await writer.write(PreparedBatch(Self.span(1)))
                return start.duration(to: .now)
            }
            // Far less than the interval: the batch did not wait for company.
            #expect(waited < Self.atOnce, "waited \(waited)")
            #expect(writer.statistics.commits == 2)
        }
    }

    /// How long the writers below wait for company after a commit begins.
    static let senderInterval = Duration.seconds(4)

    /// A commit made sooner than this did not wait for the interval. Half of it: a commit under
    /// the load of the whole suite on two cores has taken most of a second.
    static let atOnce = senderInterval / 2

    /// Runs `body` on a writer that waits `senderInterval` for company, with two senders open,
    /// right after its first commit (one span); `body` gets the time from before that commit.
    /// - Returns: what `body` returned, and the commits made in all.
    static func afterFirstCommit<T>(
        _ body: (IngestWriter, ContinuousClock.Instant) async throws -> T
    ) async throws -> (result: T, commits: Int) {
        try await withTemporaryDatabase { database, _ in
            var configuration = IngestWriter.Configuration()
            configuration.commitInterval = senderInterval
            let writer = IngestWriter(database: database, configuration: configuration, logger: Logger.quiet)
            writer.senderOpened()
            writer.senderOpened()
            let result = try await running(writer) {
                let start = ContinuousClock.now
                _ = try await writer.write(PreparedBatch(span(0)))
                return try await body(writer, start)
            }
            return (result, writer.statistics.commits)
        }
    }

    @Test func onceEverySenderWaitsTheQueueIsCommittedAtOnce() async throws {
        let (waited, commits) = try await Self.afterFirstCommit { writer, _ in
            // Right after a commit: the first sender's batch waits for the second sender…
            let first = try writer.submit(PreparedBatch(Self.span(1)), fromSender: true)
            try await Task.sleep(for: .milliseconds(300))
            let firstAlone = writer.statistics.commits > 1
            // …whose batch ends the wait: nothing more can come before they are answered.
            let start = ContinuousClock.now
            let second = try writer.submit(PreparedBatch(Self.span(2)), fromSender: true)
            _ = try await first.committed()
            _ = try await second.committed()
            return (firstAlone, start.duration(to: .now))
        }
        #expect(!waited.0, "committed before every sender waited")
        #expect(waited.1 < Self.atOnce, "waited \(waited.1) for the interval")
        #expect(commits == 2)
    }

    /// An access-log line as the source proxy reports it: a call, no span.
    static func loggedCall(_ i: Int) -> IngestBatch {
        let web = WorkloadIdentity(namespace: "shop", workload: "web-v1", app: "web", version: "v1")
        let api = WorkloadIdentity(namespace: "shop", workload: "api-v1", app: "api", version: "v1")
        return IngestBatch(requests: [
            CallReport(
                reporter: .source, proxy: web, peer: api,
                service: ServiceRef(host: "api.shop.svc.cluster.local", name: "api", namespace: "shop"),
                startMicros: 1_795_706_850_000_000 + Int64(i), durationMicros: 1_000, responseCode: 200,
                requestID: "call-\(i)", channel: .accessLog)
        ])
    }

    @Test func aSendersBatchWithoutSpansDoesNotWaitForCompany() async throws {
        let (waited, commits) = try await Self.afterFirstCommit { writer, _ in
            // Calls cost a commit little of their own: one sender's lines go at once, though the
            // other sender might send more.
            let start = ContinuousClock.now
            _ = try await writer.submit(PreparedBatch(Self.loggedCall(1)), fromSender: true).committed()
            return start.duration(to: .now)
        }
        #expect(waited < Self.atOnce, "waited \(waited) for the interval")
        #expect(commits == 2)
    }

    @Test func anotherBatchQueuedOrASenderGoneDecidesTheWait() async throws {
        let (outcome, commits) = try await Self.afterFirstCommit { writer, start in
            // A batch from outside the senders (a gRPC stream, say) keeps the wait going even when
            // both senders wait: its sender may send more.
            let other = try writer.submit(PreparedBatch(Self.span(1)))
            let first = try writer.submit(PreparedBatch(Self.span(2)), fromSender: true)
            let second = try writer.submit(PreparedBatch(Self.span(3)), fromSender: true)
            try await Task.sleep(for: .milliseconds(300))
            let early = writer.statistics.commits > 1
            for receipt in [other, first, second] { _ = try await receipt.committed() }
            let interval = start.duration(to: .now)
            // One sender waits, the other goes away: the one left is all there is.
            _ = try await writer.write(PreparedBatch(Self.span(4)))
            let third = try writer.submit(PreparedBatch(Self.span(5)), fromSender: true)
            let closedAt = ContinuousClock.now
            writer.senderClosed()
            _ = try await third.committed()
            return (early, interval, closedAt.duration(to: .now))
        }
        #expect(!outcome.0, "committed before the interval with another batch queued")
        // The second commit was due `senderInterval` after the first began.
        #expect(outcome.1 >= Self.senderInterval, "committed after \(outcome.1)")
        #expect(outcome.2 < Self.atOnce, "waited \(outcome.2) after the other sender went away")
        #expect(commits == 4)
    }

    @Test func aSpanComesBackFromItsBlockAsItWent() async throws {
        try await withTemporaryDatabase { database, _ in
            let span = Span(
                traceID: TraceID(hex: String(repeating: "a", count: 32))!, spanID: SpanID(hex: String(repeating: "b", count: 16))!,
                parentID: SpanID(hex: String(repeating: "c", count: 16)), kind: .client, name: "GET /",
                startMicros: 1_795_706_850_000_000, durationMicros: 1500,
                localEndpoint: .init(serviceName: "api", ipv4: "10.0.0.1", port: 8080),
                remoteEndpoint: .init(serviceName: "db", ipv6: "::1"),
                annotations: [.init(timestampMicros: 1_795_706_849_999_900, value: "wr\"ote\n")],
                tags: ["z": "last", "a": "first\u{1}", "error": "true", "u": "ü→😀\\"], shared: true, debug: true)
            _ = try await database.write([IngestBatch(spans: [span])])
            #expect(try await database.spans(traceID: span.traceID.hex) == [span])
            #expect(try await database.remoteServiceNames(service: "api") == ["db"])
        }
    }
}
