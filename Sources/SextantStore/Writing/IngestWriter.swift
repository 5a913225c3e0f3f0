package import Logging
package import SextantModel
package import ServiceLifecycle
import Synchronization

/// The single writer: queues batches from every receiver and commits them together (group commit),
/// answering each sender only once its records are committed.
///
/// The queue is bounded in records; when it is full, `write` fails at once with `.overloaded`
/// so receivers can shed load instead of growing memory.
package final class IngestWriter: Service, Sendable {
    package struct Configuration: Sendable {
        /// Records waiting for a commit before new batches are refused.
        package var maxQueuedRecords = 200_000
        /// Records per transaction.
        package var maxRecordsPerCommit = 20_000

        package init() {}
    }

    private struct Pending {
        var batch: IngestBatch
        var continuation: CheckedContinuation<WriteSummary, any Error>
    }

    private struct State {
        var queue: [Pending] = []
        var queuedRecords = 0
        var closed = false
        var totals = WriteSummary()
        var commits = 0
    }

    private let database: SextantDatabase
    private let configuration: Configuration
    private let logger: Logger
    private let state = Mutex(State())
    private let wakeups: AsyncStream<Void>
    private let wake: AsyncStream<Void>.Continuation

    package init(database: SextantDatabase, configuration: Configuration = .init(), logger: Logger) {
        self.database = database
        self.configuration = configuration
        self.logger = logger
        (wakeups, wake) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    /// Queues a batch and returns once it is committed.
    /// - Throws: `StoreError` `.overloaded` when the queue is full, `.unavailable` after shutdown
    ///   began, `.storageFull` or `.readOnly` when the database cannot grow or be written, `.failed`
    ///   when the commit failed otherwise.
    package func write(_ batch: IngestBatch) async throws -> WriteSummary {
        if batch.recordCount == 0 { return WriteSummary() }
        return try await withCheckedThrowingContinuation { continuation in
            let refusal: StoreError? = state.withLock { state in
                if state.closed { return StoreError(.unavailable, "shutting down") }
                if state.queuedRecords > 0, state.queuedRecords + batch.recordCount > configuration.maxQueuedRecords {
                    return StoreError(.overloaded, "ingest queue is full (\(state.queuedRecords) records waiting)")
                }
                state.queue.append(Pending(batch: batch, continuation: continuation))
                state.queuedRecords += batch.recordCount
                return nil
            }
            if let refusal {
                continuation.resume(throwing: refusal)
            } else {
                wake.yield()
            }
        }
    }

    /// Records waiting now, and what has been committed since start.
    package var statistics: (queued: Int, commits: Int, totals: WriteSummary) {
        state.withLock { ($0.queuedRecords, $0.commits, $0.totals) }
    }

    package func run() async throws {
        await withGracefulShutdownHandler {
            for await _ in wakeups {
                await drain()
            }
        } onGracefulShutdown: {
            self.state.withLock { $0.closed = true }
            self.wake.finish()
        }
        state.withLock { $0.closed = true }
        await drain()
        logger.info("ingest writer stopped", metadata: ["store.commits": "\(statistics.commits)"])
    }

    /// Commits everything queued, a transaction at a time.
    private func drain() async {
        while true {
            let taken: [Pending] = state.withLock { state in
                var count = 0
                var end = 0
                while end < state.queue.count, count == 0 || count + state.queue[end].batch.recordCount
                    <= configuration.maxRecordsPerCommit
                {
                    count += state.queue[end].batch.recordCount
                    end += 1
                }
                let taken = Array(state.queue[..<end])
                state.queue.removeFirst(end)
                state.queuedRecords -= count
                return taken
            }
            if taken.isEmpty { return }
            do {
                let summaries = try await database.writeEach(taken.map(\.batch))
                state.withLock {
                    for summary in summaries { $0.totals.add(summary) }
                    $0.commits += 1
                }
                for (pending, summary) in zip(taken, summaries) { pending.continuation.resume(returning: summary) }
            } catch {
                let failure = StoreError(committing: error)
                logger.error(
                    "commit failed",
                    metadata: ["error.type": "\(type(of: error))", "error": "\(error)", "store.refusal": "\(failure.code.reason)"])
                for pending in taken { pending.continuation.resume(throwing: failure) }
            }
        }
    }
}
