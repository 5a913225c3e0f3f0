import Logging
import SextantModel
import SextantStore

/// Hands decoded batches to the writer and counts them per channel in Sextant's own metrics.
struct IngestSink: Sendable {
    let writer: IngestWriter
    let metrics: SelfMetrics

    /// Returns once the batch's records are committed; counts them once they are.
    func store(_ batch: IngestBatch, channel: String) async throws {
        metrics.add(
            "sextant_received_records_total", [("channel", channel), ("outcome", "rejected")],
            Double(batch.rejected.count))
        do {
            _ = try await writer.write(batch)
        } catch let error as StoreError {
            metrics.add("sextant_ingest_refused_total", [("channel", channel), ("reason", "\(error.code)")])
            throw error
        }
        // Calls derived from spans are not records the sender sent.
        let received = batch.recordCount - (batch.spans.isEmpty ? 0 : batch.requests.count)
        metrics.add("sextant_received_records_total", [("channel", channel), ("outcome", "accepted")], Double(received))
    }

    /// `N of M rejected: first few messages`, for error answers and partial successes.
    static func summary(_ errors: [RecordError], total: Int, noun: String) -> String {
        var text = "rejected \(errors.count) of \(total) \(noun): "
            + errors.prefix(5).map(\.description).joined(separator: "; ")
        if errors.count > 5 { text += "; and \(errors.count - 5) more" }
        return text
    }
}
