import Foundation
import Logging
import Metrics
import SextantIngest
import SextantModel
import SextantStore

/// Hands decoded batches to the writer, within the ingest limits and the memory limit, and counts
/// what happened to them per channel in Sextant's own metrics.
struct IngestSink: Sendable {
    let writer: IngestWriter
    let metrics: SelfMetrics
    let limits: IngestLimits
    let memory: MemoryGuard
    /// Where committed spans and log records are forwarded (`--otlp-export-endpoint`), if anywhere.
    var forwarder: OTLPExporter? = nil
    /// The time of day the skew limit and records without a time are measured by.
    var clock: WallClock { writer.database.clock }

    /// A batch handed to the writer and not yet known to be committed.
    struct Submission: Sendable {
        /// The batch as limited, before series-limited points are known.
        var batch: IngestBatch
        var channel: String
        var receipt: IngestWriter.Receipt
        /// When it was queued, for `sextant_ingest_latency_seconds`.
        var queuedAt = ContinuousClock.now
    }

    /// Applies the limits to a batch and returns once what is left of it is committed.
    /// - Returns: the batch as stored, with every rejected record in `rejected`: the decoder's, the
    ///   limits', and points of series past `--max-series-per-metric`.
    /// - Throws: `DecodeError` `.tooManyRecords`, `MemoryGuard.Refusal`, `StoreError`.
    @discardableResult
    func store(_ batch: consuming IngestBatch, channel: String) async throws -> IngestBatch {
        try await committed(submit(batch, channel: channel))
    }

    /// Applies the limits to a batch, prepares its rows on the caller's task and queues it for the
    /// writer behind everything queued before, without waiting for its commit. Takes the batch
    /// over: the limits trim its records in place, and a batch its caller still held would have
    /// each of its arrays copied, every record's strings retained, at the first change.
    /// - Parameter fromSender: whether a sender counted by `IngestWriter.senderOpened()` sent it.
    /// - Throws: `DecodeError` `.tooManyRecords`, `MemoryGuard.Refusal`, `StoreError` (queue full,
    ///   shutting down).
    func submit(_ batch: consuming IngestBatch, channel: String, fromSender: Bool = false) throws -> Submission {
        try limits.checkCount(batch)
        let report = limits.apply(to: &batch, nowMicros: clock.nowMicros)
        metrics.count("sextant_ingest_truncated_strings_total", [("channel", channel)], report.truncatedStrings)
        metrics.count("sextant_ingest_dropped_attributes_total", [("channel", channel)], report.droppedAttributes)
        try memory.check()
        let receipt = try writer.submit(PreparedBatch(copy batch), fromSender: fromSender)
        return Submission(batch: batch, channel: channel, receipt: receipt)
    }

    /// Returns once a submitted batch is committed, and counts what happened to it.
    /// - Returns: as `store`.
    /// - Throws: `StoreError` when its commit failed.
    func committed(_ submission: Submission) async throws -> IngestBatch {
        finish(submission, summary: try await submission.receipt.committed())
    }

    /// Counts what happened to a committed submission and forwards it; what `committed` does once
    /// the commit is known, for receivers called back by `Receipt.whenCommitted`.
    /// - Returns: as `store`.
    func finish(_ submission: Submission, summary: WriteSummary) -> IngestBatch {
        var batch = submission.batch
        let channel = submission.channel
        Timer(label: "sextant_ingest_latency_seconds", dimensions: [("channel", channel)], factory: metrics)
            .record(duration: submission.queuedAt.duration(to: .now))
        if !summary.seriesLimitedPoints.isEmpty {
            let limited = Set(summary.seriesLimitedPoints)
            for index in summary.seriesLimitedPoints where index < batch.metrics.count {
                let name = batch.metrics[index].name
                batch.rejected.append(
                    RecordError(
                        location: "point of \(name.prefix(120))",
                        message: "metric has reached its series limit (--max-series-per-metric); points of new series are dropped",
                        reason: .seriesLimit))
            }
            batch.metrics = batch.metrics.enumerated().filter { !limited.contains($0.offset) }.map(\.element)
        }
        var byReason: [RecordError.Reason: Int] = [:]
        for error in batch.rejected { byReason[error.reason, default: 0] += 1 }
        for (reason, count) in byReason {
            metrics.count(
                "sextant_ingest_rejected_records_total", [("channel", channel), ("reason", reason.rawValue)], count)
        }
        metrics.count(
            "sextant_received_records_total", [("channel", channel), ("outcome", "rejected")],
            batch.rejected.count)
        // Calls derived from spans are not records the sender sent.
        let received = batch.recordCount - (batch.spans.isEmpty ? 0 : batch.requests.count)
        metrics.count("sextant_received_records_total", [("channel", channel), ("outcome", "accepted")], received)
        // Queued before the sender hears of the commit, so that nothing acknowledged misses it.
        forwarder?.forward(batch)
        return batch
    }

    /// Counts a request refused as a whole: by the sender's fault (`sextant_ingest_rejected_requests_total`)
    /// or because Sextant could not take it now (`sextant_ingest_refused_total`).
    /// Runs `body`, counting what it throws for `channel` (a rejected or refused request) before
    /// passing it on.
    func counting<T>(channel: String, _ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch {
            count(error, channel: channel)
            throw error
        }
    }

    func count(_ error: any Error, channel: String) {
        switch error {
        case let e as DecodeError:
            metrics.count("sextant_ingest_rejected_requests_total", [("channel", channel), ("reason", e.code.reason)])
        case let e as StoreError:
            metrics.count("sextant_ingest_refused_total", [("channel", channel), ("reason", e.code.reason)])
        case is MemoryGuard.Refusal:
            metrics.count("sextant_ingest_refused_total", [("channel", channel), ("reason", "memory")])
        default:
            break
        }
    }

    /// `N of M rejected: first few messages`, for error answers and partial successes.
    static func summary(_ errors: [RecordError], total: Int, noun: String) -> String {
        "rejected \(errors.count) of \(total) \(noun): " + firstReasons(errors)
    }

    /// The first five distinct messages, each with how often it occurs, then how many more.
    static func firstReasons(_ errors: [RecordError]) -> String {
        var order: [String] = []
        var counts: [String: Int] = [:]
        for error in errors {
            let text = error.description
            if counts[text] == nil {
                if order.count == 5 { continue }
                order.append(text)
            }
            counts[text, default: 0] += 1
        }
        var text = order.map { counts[$0]! > 1 ? "\($0) (\(counts[$0]!) times)" : $0 }.joined(separator: "; ")
        let shown = order.reduce(0) { $0 + counts[$1]! }
        if errors.count > shown { text += "; and \(errors.count - shown) more" }
        return text
    }
}
