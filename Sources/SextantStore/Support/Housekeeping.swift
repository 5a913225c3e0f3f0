import Logging
import ServiceLifecycle

/// Runs `pass` every `interval` until graceful shutdown, logging a failed pass and going on: the
/// loop of the store's background services (retention, span block compaction).
func runPeriodically(
    every interval: Duration, logger: Logger, failure: String, _ pass: @escaping @Sendable () async throws -> Void
) async throws {
    try await cancelWhenGracefulShutdown {
        while !Task.isCancelled {
            do {
                try await pass()
            } catch {
                logger.warning("\(failure)", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: interval)
        }
    }
}
