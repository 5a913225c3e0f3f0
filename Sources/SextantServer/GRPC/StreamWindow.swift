import SextantModel
import Synchronization

/// How much of one client stream (Envoy ALS, metrics service) may wait for its commit while the
/// stream reads on, so that one busy proxy can fill a group commit instead of waiting for each of
/// its messages in turn.
package struct StreamWindow: Sendable {
    /// Messages of one stream queued and not yet committed (default 8).
    package var maxMessages = 8
    /// Records of one stream queued and not yet committed (default 20,000); one larger message is
    /// still taken when nothing of the stream waits.
    package var maxRecords = 20_000

    package init() {}

    /// Decodes a stream's messages in order and hands each batch to the writer in that order,
    /// keeping at most the window waiting for its commit.
    ///
    /// Returns once every batch of the stream is committed. A message that cannot be decoded or
    /// queued, or a batch whose commit failed, ends the stream with that error once the batches
    /// queued before it are committed (a commit failure is seen at the stream's next message or end).
    /// - Parameters:
    ///   - decode: turns one message into a batch, on the stream's task, in order.
    ///   - stored: told each batch as stored, once committed.
    func store<Messages: AsyncSequence>(
        _ messages: Messages, sink: IngestSink, channel: String,
        decode: (Messages.Element) throws -> IngestBatch,
        stored: @escaping @Sendable (IngestBatch) -> Void = { _ in }
    ) async throws {
        let failed = FailureFlag()
        try await withThrowingTaskGroup(of: Int.self) { group in
            var messagesWaiting = 0
            var recordsWaiting = 0
            for try await message in messages {
                if failed.raised.load(ordering: .relaxed) {
                    // The failed batch's error, once the batches before it are committed.
                    while try await group.next() != nil {}
                }
                let batch = try decode(message)
                while messagesWaiting > 0,
                    messagesWaiting >= maxMessages || recordsWaiting + batch.recordCount > maxRecords
                {
                    recordsWaiting -= try await group.next() ?? 0
                    messagesWaiting -= 1
                }
                let submission = try sink.submit(consume batch, channel: channel)
                let records = submission.batch.recordCount
                group.addTask {
                    do {
                        stored(try await sink.committed(submission))
                    } catch {
                        failed.raised.store(true, ordering: .relaxed)
                        throw error
                    }
                    return records
                }
                messagesWaiting += 1
                recordsWaiting += records
            }
            try await group.waitForAll()
        }
    }
}

/// Set by a stream's commit tasks when one of them failed.
private final class FailureFlag: Sendable {
    let raised = Atomic(false)
}
