package import Logging
package import SextantModel
package import ServiceLifecycle
import Synchronization

/// The single writer: queues prepared batches from every receiver and commits them together (group
/// commit), answering each sender only once its records are committed.
///
/// Receivers prepare their batches (`PreparedBatch`) on their own tasks, so a transaction only runs
/// statements; while one commit is being written to disk, new batches queue up and the next
/// transaction takes all of them at once, up to `maxRecordsPerCommit` and `maxBytesPerCommit`.
///
/// The queue is bounded in records and bytes; when it is full, `submit` fails at once with
/// `.overloaded` so receivers can shed load instead of growing memory.
package final class IngestWriter: Service, Sendable {
    package struct Configuration: Sendable {
        /// Records waiting for a commit before new batches are refused (default 200,000).
        package var maxQueuedRecords = 200_000
        /// Bytes of prepared records (`PreparedBatch.estimatedBytes`) waiting for a commit before new
        /// batches are refused (default 256 MiB).
        package var maxQueuedBytes = 256 << 20
        /// Records per transaction (default 20,000); a larger batch is committed alone.
        package var maxRecordsPerCommit = 20_000
        /// Bytes of prepared records per transaction (default 32 MiB); a larger batch is committed alone.
        package var maxBytesPerCommit = 32 << 20
        /// The least time from one commit's start to the next one's while batches keep coming
        /// (default 4 ms, flag `--commit-interval`), unless a full commit is already queued. A
        /// commit has a cost of its own (a transaction, a block per kind, pages written and
        /// synced): under load, committing every request as it comes spends more on commits than
        /// on records, and waiting lets the next commit take many requests at once. But every
        /// sender waits for it too, and a sender with one request in flight per connection sends
        /// only as fast as its answers come. Once a commit's records cost the writer little, CPU
        /// bounds ingest before that wait does: 4 ms took more records a second through 64
        /// connections than 1, 2 or 8 ms (README, "How it works"). A batch that finds the writer
        /// idle since longer is committed at once. The wait applies only while it may pay
        /// (`State.gatheringPays`): a queue of senders' batches without spans (access-log lines) is
        /// committed at once, and so is the queue once every open sender (`senderOpened()`) has a
        /// batch in it, since nothing more can come before the writer answers.
        package var commitInterval = Duration.milliseconds(4)

        package init() {}
    }

    /// Upper bounds of the records-per-commit histogram.
    package static let commitRecordBounds = [1, 10, 100, 1000, 5000, 10_000, 20_000, 50_000]

    /// What the writer has done since it started.
    package struct Statistics: Sendable {
        /// Records waiting for a commit now.
        package var queuedRecords = 0
        /// Bytes of prepared records waiting for a commit now.
        package var queuedBytes = 0
        /// Transactions committed.
        package var commits = 0
        /// Time spent inside write transactions, commit included, failed ones too.
        package var busy = Duration.zero
        /// Commits per upper bound of `commitRecordBounds` (not cumulative), then those above the last.
        package var commitsByRecords = [Int](repeating: 0, count: IngestWriter.commitRecordBounds.count + 1)
        /// Records in every commit, added up.
        package var committedRecords = 0
        /// What committed transactions did.
        package var totals = WriteSummary()
    }

    private struct Pending {
        var batch: PreparedBatch
        var receipt: Receipt
        /// Whether it came from an open sender, which sends nothing more until it is answered.
        var fromSender: Bool
    }

    /// The writer's wait for more batches before a commit, while it lasts.
    private struct Gathering {
        var generation: Int
        var continuation: CheckedContinuation<Void, Never>
    }

    private struct State {
        var queue: [Pending] = []
        /// When the last transaction began.
        var lastCommitStart: ContinuousClock.Instant?
        /// Where the queue starts: taken entries are dropped in bulk, not one at a time.
        var head = 0
        var closed = false
        var statistics = Statistics()
        /// Open senders that have one batch at a time in flight (`senderOpened()`).
        var senders = 0
        /// Queued batches of open senders, and the other queued batches.
        var queuedFromSenders = 0
        var queuedFromOthers = 0
        /// Queued batches that hold spans.
        var queuedWithSpans = 0
        var gathering: Gathering?
        var gatherings = 0

        /// Whether every open sender waits for the next commit and nothing else is queued: waiting
        /// longer cannot bring more records into it.
        var sendersAllWaiting: Bool {
            senders > 0 && queuedFromSenders >= senders && queuedFromOthers == 0
        }

        /// Whether waiting for more batches may pay: something queued costs a commit much of its
        /// own (spans: a group row and a summary row per service, name and remote service, however
        /// few its spans), or came from outside the senders (a stream, which may send more at once
        /// without waiting for an answer), and not every sender waits already.
        var gatheringPays: Bool {
            (queuedWithSpans > 0 || queuedFromOthers > 0) && !sendersAllWaiting
        }

        /// Ends the wait for more batches: the given one, or whichever is going on.
        mutating func endGathering(_ generation: Int? = nil) -> CheckedContinuation<Void, Never>? {
            guard let gathering, generation == nil || generation == gathering.generation else { return nil }
            self.gathering = nil
            return gathering.continuation
        }
    }

    package let database: SextantDatabase
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

    /// Prepares a batch on the caller's task, queues it and returns once it is committed.
    /// - Throws: as `write(_: PreparedBatch)`.
    package func write(_ batch: IngestBatch) async throws -> WriteSummary {
        try await write(PreparedBatch(batch))
    }

    /// Queues a prepared batch and returns once it is committed.
    /// - Throws: `StoreError` `.overloaded` when the queue is full, `.unavailable` after shutdown
    ///   began, `.storageFull` or `.readOnly` when the database cannot grow or be written, `.failed`
    ///   when the commit failed otherwise.
    package func write(_ batch: PreparedBatch) async throws -> WriteSummary {
        try await submit(batch).committed()
    }

    /// A sender that sends nothing more until its batch in flight is committed (an HTTP/1.1
    /// connection) began sending; its batches are submitted `fromSender`. Once every open sender
    /// has a batch queued, the writer commits them at once instead of waiting out `commitInterval`.
    package func senderOpened() {
        state.withLock { $0.senders += 1 }
    }

    /// A sender counted by `senderOpened()` went away.
    package func senderClosed() {
        let wait = state.withLock { state in
            state.senders -= 1
            return state.gatheringPays ? nil : state.endGathering()
        }
        wait?.resume()
    }

    /// Queues a prepared batch at once, behind every batch queued before it, and returns what
    /// tells when it is committed. Lets one sender have several batches in flight in order.
    /// - Parameter fromSender: whether an open sender (`senderOpened()`) sent it.
    /// - Throws: `StoreError` `.overloaded` when the queue is full, `.unavailable` after shutdown began.
    package func submit(_ batch: PreparedBatch, fromSender: Bool = false) throws -> Receipt {
        let receipt = Receipt()
        if batch.recordCount == 0 {
            receipt.resolve(.success(WriteSummary()))
            return receipt
        }
        let wait = try state.withLock { state in
            if state.closed { throw StoreError(.unavailable, "shutting down") }
            let queued = state.statistics
            // One batch larger than the bounds is taken when nothing waits, and committed alone.
            if queued.queuedRecords > 0, queued.queuedRecords + batch.recordCount > configuration.maxQueuedRecords {
                throw StoreError(.overloaded, "ingest queue is full (\(queued.queuedRecords) records waiting)")
            }
            if queued.queuedRecords > 0, queued.queuedBytes + batch.estimatedBytes > configuration.maxQueuedBytes {
                throw StoreError(
                    .overloaded, "ingest queue is full (\(queued.queuedBytes >> 20) MiB of records waiting)")
            }
            state.queue.append(Pending(batch: batch, receipt: receipt, fromSender: fromSender))
            state.statistics.queuedRecords += batch.recordCount
            state.statistics.queuedBytes += batch.estimatedBytes
            if fromSender { state.queuedFromSenders += 1 } else { state.queuedFromOthers += 1 }
            if batch.spanBlock != nil { state.queuedWithSpans += 1 }
            return state.gatheringPays ? nil : state.endGathering()
        }
        wake.yield()
        wait?.resume()
        return receipt
    }

    /// Records waiting now, and what has been committed since start.
    package var statistics: Statistics {
        state.withLock { $0.statistics }
    }

    package func run() async throws {
        await withGracefulShutdownHandler {
            for await _ in wakeups {
                await drain()
            }
        } onGracefulShutdown: {
            let wait = self.state.withLock { state in
                state.closed = true
                return state.endGathering()
            }
            wait?.resume()
            self.wake.finish()
        }
        state.withLock { $0.closed = true }
        await drain()
        do {
            // In a task of its own: a cancelled shutdown still writes them.
            let database = self.database
            try await Task {
                try await database.flushRollups()
                try await database.flushMetricHead()
            }.value
        } catch {
            // The next start folds the calls in from their blocks.
            logger.error("writing the rollups at shutdown failed", metadata: ["error": "\(error)"])
        }
        logger.info("ingest writer stopped", metadata: ["store.commits": "\(statistics.commits)"])
    }

    /// Commits everything queued, a transaction at a time; what arrives during a commit is taken by
    /// the next.
    private func drain() async {
        while true {
            await gather()
            let taken = takeGroup()
            if taken.isEmpty { return }
            let records = taken.reduce(0) { $0 + $1.batch.recordCount }
            do {
                let summaries = try await database.writeEach(taken.map(\.batch)) { busy in
                    self.state.withLock { $0.statistics.busy += busy }
                }
                state.withLock { state in
                    for summary in summaries { state.statistics.totals.add(summary) }
                    state.statistics.commits += 1
                    state.statistics.committedRecords += records
                    let bucket = Self.commitRecordBounds.firstIndex { records <= $0 } ?? Self.commitRecordBounds.count
                    state.statistics.commitsByRecords[bucket] += 1
                }
                for (pending, summary) in zip(taken, summaries) { pending.receipt.resolve(.success(summary)) }
            } catch {
                let failure = StoreError(committing: error)
                logger.error(
                    "commit failed",
                    metadata: [
                        "error.type": "\(type(of: error))", "error": "\(error)", "store.refusal": "\(failure.code.reason)",
                    ])
                for pending in taken { pending.receipt.resolve(.failure(failure)) }
            }
        }
    }

    /// Waits, while commits follow each other closely, until `commitInterval` has passed since
    /// the last one began, so that batches arriving meanwhile share the next commit; not when a
    /// full commit is queued already, nor once shutdown began, nor while waiting cannot pay
    /// (`State.gatheringPays`), and no longer than until it no longer can.
    private func gather() async {
        let due: ContinuousClock.Instant? = state.withLock { state in
            guard let last = state.lastCommitStart, !state.closed, state.gatheringPays,
                state.statistics.queuedRecords < configuration.maxRecordsPerCommit,
                state.statistics.queuedBytes < configuration.maxBytesPerCommit
            else { return nil }
            return last + configuration.commitInterval
        }
        guard let due, due > .now else { return }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let generation: Int? = state.withLock { state in
                guard !state.closed, state.gatheringPays else { return nil }
                state.gatherings += 1
                state.gathering = Gathering(generation: state.gatherings, continuation: continuation)
                return state.gatherings
            }
            guard let generation else { return continuation.resume() }
            Task {
                try? await Task.sleep(until: due, clock: .continuous)
                self.state.withLock { $0.endGathering(generation) }?.resume()
            }
        }
    }

    /// Takes the oldest queued batches, as many as one transaction may hold (at least one).
    private func takeGroup() -> [Pending] {
        state.withLock { state in
            var records = 0
            var bytes = 0
            var end = state.head
            while end < state.queue.count {
                let batch = state.queue[end].batch
                if end > state.head,
                    records + batch.recordCount > configuration.maxRecordsPerCommit
                        || bytes + batch.estimatedBytes > configuration.maxBytesPerCommit
                {
                    break
                }
                records += batch.recordCount
                bytes += batch.estimatedBytes
                if state.queue[end].fromSender { state.queuedFromSenders -= 1 } else { state.queuedFromOthers -= 1 }
                if batch.spanBlock != nil { state.queuedWithSpans -= 1 }
                end += 1
            }
            let taken = Array(state.queue[state.head..<end])
            if !taken.isEmpty { state.lastCommitStart = .now }
            state.head = end
            if state.head == state.queue.count {
                state.queue.removeAll(keepingCapacity: true)
                state.head = 0
            } else if state.head > 1024, state.head * 2 > state.queue.count {
                state.queue.removeFirst(state.head)
                state.head = 0
            }
            state.statistics.queuedRecords -= records
            state.statistics.queuedBytes -= bytes
            return taken
        }
    }
}

extension IngestWriter {
    /// A queued batch's outcome: its summary once committed, or why it was not. Awaited once.
    package final class Receipt: Sendable {
        private enum State {
            case pending
            case waiting(@Sendable (Result<WriteSummary, any Error>) -> Void)
            case done(Result<WriteSummary, any Error>)
        }

        private let state = Mutex(State.pending)

        init() {}

        /// Returns once the batch is committed.
        /// - Throws: `StoreError` when its commit failed.
        package func committed() async throws -> WriteSummary {
            try await withCheckedThrowingContinuation { continuation in
                whenCommitted { continuation.resume(with: $0) }
            }
        }

        /// Calls `callback` once the batch is committed or failed: on the writer's thread, or at
        /// once on the caller's when that has happened already. For receivers that answer from an
        /// event loop without a task. A receipt is awaited or called back once.
        package func whenCommitted(_ callback: @escaping @Sendable (Result<WriteSummary, any Error>) -> Void) {
            let outcome: Result<WriteSummary, any Error>? = state.withLock { state in
                switch state {
                case .pending:
                    state = .waiting(callback)
                    return nil
                case .waiting:
                    preconditionFailure("a receipt is awaited once")
                case .done(let outcome):
                    return outcome
                }
            }
            if let outcome { callback(outcome) }
        }

        func resolve(_ outcome: Result<WriteSummary, any Error>) {
            let waiting: (@Sendable (Result<WriteSummary, any Error>) -> Void)? = state.withLock { state in
                switch state {
                case .pending:
                    state = .done(outcome)
                    return nil
                case .waiting(let callback):
                    state = .done(outcome)
                    return callback
                case .done:
                    return nil
                }
            }
            waiting?(outcome)
        }
    }
}
