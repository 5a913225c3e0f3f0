import Foundation
import NIOPosix
import SextantLoadgen
import SextantServer
import Synchronization

/// Runs one fixed-rate step: `connections` tasks take the next due request in turn, wait for its
/// time and send it; latency counts from the due time, so requests that wait for a free connection
/// show the wait.
struct OpenLoopRunner {
    var payloads: ChannelPayloads
    var ports: TargetPorts
    var connections: Int
    var group: MultiThreadedEventLoopGroup
    /// Records are this many seconds old when sent (plus their place in the round).
    var ageSeconds: Double = 4

    private final class Tally: Sendable {
        struct State {
            var latencies: [Double] = []
            var result: StepResult
            var samples: Set<String> = []
        }
        let state: Mutex<State>
        init(_ result: StepResult) { state = Mutex(State(result: result)) }

        func note(_ outcome: Outcome, records: Int, latencyMs: Double) {
            state.withLock { s in
                s.result.requestsSent += 1
                s.result.recordsSent += records
                switch outcome {
                case .acked(let n):
                    s.result.recordsAcked += n
                    s.latencies.append(latencyMs)
                case .refused(let why):
                    s.result.refused += 1
                    if s.samples.count < 4 { s.samples.insert(why) }
                case .failed(let why, let acked):
                    s.result.errors += 1
                    s.result.recordsAcked += acked
                    if s.samples.count < 4 { s.samples.insert(why) }
                }
            }
        }
    }

    /// Sends at `rate` records/s for `seconds`; requests still unsent `grace` seconds after the
    /// schedule ends are counted as unsent.
    func step(rate: Double, seconds: Double, grace: Double = 10) async -> StepResult {
        let schedule = OpenLoopSchedule(recordsPerRequest: payloads.recordsPerRequest, recordsPerSecond: rate)
        let total = schedule.requests(within: seconds)
        let firstIndex = payloads.reserve(requests: total)
        let tally = Tally(StepResult(targetRecordsPerSecond: rate, seconds: 0, scheduledSeconds: seconds))
        let next = SharedCounter()
        let clock = ContinuousClock()
        let start = clock.now + .milliseconds(50)
        let deadline = start + .seconds(seconds + grace)
        let wallStartMicros = Int64(Date().timeIntervalSince1970 * 1_000_000) + 50_000
        let payloads = self.payloads
        let ageMicros = Int64(ageSeconds * 1_000_000)
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<connections {
                group.addTask { [ports, channel = payloads.channel, self] in
                    await withTaskExecutorPreference(EventLoopTaskExecutor(self.group)) {
                        do {
                            try await LoadConnection.with(channel: channel, ports: ports, group: self.group) { send in
                                while true {
                                    let index = next.add()
                                    if index >= total { return }
                                    let dueOffset = schedule.due(index)
                                    let due = start + .seconds(dueOffset)
                                    if clock.now > deadline { return }
                                    await pace(until: due, clock: clock)
                                    let (request, nonce) = payloads.request(firstIndex + index)
                                    let base = wallStartMicros + Int64(dueOffset * 1_000_000) - ageMicros
                                    let outcome = await send(request, nonce, base)
                                    let latency = Double((clock.now - due) / .microseconds(1)) / 1000
                                    tally.note(outcome, records: request.records, latencyMs: latency)
                                }
                            }
                        } catch {
                            tally.note(.failed("connection: \(error)", acked: 0), records: 0, latencyMs: 0)
                        }
                    }
                }
            }
        }
        let elapsed = clock.now - start
        return tally.state.withLock { s in
            var result = s.result
            result.seconds = Double(elapsed / .milliseconds(1)) / 1000
            result.unsent = max(0, total - result.requestsSent)
            let sorted = s.latencies.sorted()
            result.p50Milliseconds = Percentile.of(sorted, 0.5)
            result.p99Milliseconds = Percentile.of(sorted, 0.99)
            result.maxMilliseconds = sorted.last
            result.errorSamples = s.samples.sorted()
            return result
        }
    }

    /// Sends `records` records as fast as they are accepted (closed loop, refused requests sent
    /// again after a pause), with times spread evenly over the `spanSeconds` before now.
    func prefill(records: Int, spanSeconds: Double) async -> (acked: Int, errors: [String]) {
        let perRequest = payloads.recordsPerRequest
        let perRound = perRequest.reduce(0, +)
        let requests = max(1, (records + perRound - 1) / perRound) * perRequest.count
        let firstIndex = payloads.reserve(requests: requests)
        let next = SharedCounter()
        let acked = SharedCounter()
        let errors = ErrorSamples()
        let nowMicros = Int64(Date().timeIntervalSince1970 * 1_000_000)
        let firstMicros = nowMicros - Int64(spanSeconds * 1_000_000)
        let payloads = self.payloads
        let step = Double(spanSeconds - 30) * 1_000_000 / Double(requests)
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<connections {
                group.addTask { [ports, self] in
                    try? await LoadConnection.with(channel: payloads.channel, ports: ports, group: self.group) { send in
                        while true {
                            let index = next.add()
                            if index >= requests { return }
                            let (request, nonce) = payloads.request(firstIndex + index)
                            let base = firstMicros + Int64(Double(index) * step)
                            attempts: for attempt in 0..<50 {
                                switch await send(request, nonce, base) {
                                case .acked(let n):
                                    acked.add(n)
                                case .refused:
                                    try? await Task.sleep(for: .milliseconds(100 * min(attempt + 1, 10)))
                                    continue
                                case .failed(let why, let n):
                                    acked.add(n)
                                    errors.note(why)
                                }
                                break attempts
                            }
                        }
                    }
                }
            }
        }
        return (acked.current, errors.all)
    }
}
