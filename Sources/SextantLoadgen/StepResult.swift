/// What one fixed-rate step of an open-loop run gave.
package struct StepResult: Sendable, Hashable {
    package var targetRecordsPerSecond: Double
    /// Seconds from the step's start to its last answer.
    package var seconds: Double
    /// Seconds the schedule lasted (what the target rate was held for).
    package var scheduledSeconds: Double
    package var requestsSent = 0
    package var recordsSent = 0
    package var recordsAcked = 0
    /// Requests refused for load (HTTP 429/503, gRPC RESOURCE_EXHAUSTED/UNAVAILABLE).
    package var refused = 0
    /// Requests answered otherwise than success (4xx/5xx, rejected records, socket errors, timeouts).
    package var errors = 0
    /// Requests due in the step but never sent before its deadline.
    package var unsent = 0
    /// Latency of acknowledged requests from their due time, milliseconds.
    package var p50Milliseconds: Double?
    package var p99Milliseconds: Double?
    package var maxMilliseconds: Double?
    /// The first few distinct error texts.
    package var errorSamples: [String] = []

    package init(targetRecordsPerSecond: Double, seconds: Double, scheduledSeconds: Double) {
        self.targetRecordsPerSecond = targetRecordsPerSecond
        self.seconds = seconds
        self.scheduledSeconds = scheduledSeconds
    }

    /// Records acknowledged per second of the schedule.
    package var ackedPerSecond: Double { scheduledSeconds > 0 ? Double(recordsAcked) / scheduledSeconds : 0 }

    /// Why this step does not count as sustained, or nil when it does: p99 under `p99Limit`
    /// milliseconds, nothing refused, failed or left unsent, and at least `deliveredShare` of the
    /// target rate acknowledged.
    package func failure(p99Limit: Double = 1000, deliveredShare: Double = 0.95) -> String? {
        if refused > 0 { return "\(refused) refused" }
        if errors > 0 { return "\(errors) errors" }
        if unsent > 0 { return "\(unsent) requests not sent in time" }
        guard let p99 = p99Milliseconds else { return "no answer" }
        if p99 >= p99Limit { return "p99 \(Int(p99)) ms" }
        if ackedPerSecond < deliveredShare * targetRecordsPerSecond {
            return "delivered \(Int(ackedPerSecond))/s of \(Int(targetRecordsPerSecond))/s"
        }
        return nil
    }

    /// The knee: the highest-rate step that passed, or nil when none did.
    package static func knee(of steps: [StepResult], p99Limit: Double = 1000) -> StepResult? {
        steps.filter { $0.failure(p99Limit: p99Limit) == nil }.max { $0.targetRecordsPerSecond < $1.targetRecordsPerSecond }
    }
}
