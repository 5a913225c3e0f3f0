import Foundation
import NIOPosix
import SextantLoadgen

/// The knee of one channel and what the server spent there.
struct ChannelReport {
    var channel: LoadChannel
    var steps: [StepResult] = []
    var knee: StepResult?
    /// The lowest rate that failed, if any did.
    var pastKnee: StepResult? {
        steps.filter { $0.failure() != nil }.min { $0.targetRecordsPerSecond < $1.targetRecordsPerSecond }
    }
    var serverCPUMicrosPerRecord: Double?
    var writeBytesPerRecord: Double?
    var diskBytesPerRecord: Double?
    var peakRssAnonBytes: Int?
    var writerBusy: Double?
    var clientCores: Double?
}

/// Readings taken around one step.
private struct Readings {
    var proc: ProcStats?
    var disk: Int?
    var busySeconds: Double?
    var commits: Double?
    var clientCPU: Double
    var wall: Date

    static func take(_ server: ServerProcess, group: MultiThreadedEventLoopGroup) async -> Readings {
        var busy: Double?
        var commits: Double?
        if let (status, text) = try? await ServerProcess.get(port: server.ports.http, path: "/metrics", group: group),
            status == 200
        {
            busy = MetricsText.sum("sextant_ingest_writer_busy_seconds_total", in: text)
            commits = MetricsText.sum("sextant_ingest_commits_total", in: text)
        }
        return Readings(
            proc: server.pid.flatMap { ProcStats.read(pid: $0) }, disk: server.diskBytes(), busySeconds: busy,
            commits: commits, clientCPU: ownCPUSeconds(), wall: Date())
    }
}

/// Steps one channel's rate up to its knee (`KneeSearch`).
func benchChannel(
    _ payloads: ChannelPayloads, server: ServerProcess, connections: Int, rates: [Double], refineSteps: Int = 0,
    stepSeconds: Double, group: MultiThreadedEventLoopGroup, log: (String) -> Void
) async -> ChannelReport {
    var report = ChannelReport(channel: payloads.channel)
    let runner = OpenLoopRunner(payloads: payloads, ports: server.ports, connections: connections, group: group)
    let diskBefore = server.diskBytes()
    var ackedTotal = 0
    var kneeDeltas: (Readings, Readings, Int)?
    var search = KneeSearch(ladder: rates, refineSteps: refineSteps)
    while let rate = search.next() {
        let before = await Readings.take(server, group: group)
        let peak = PeakSampler(pid: server.pid)
        let result = await withTaskGroup(of: StepResult?.self) { tasks in
            tasks.addTask { await peak.run(); return nil }
            let result = await runner.step(rate: rate, seconds: stepSeconds)
            peak.stop()
            return result
        }
        let after = await Readings.take(server, group: group)
        ackedTotal += result.recordsAcked
        report.steps.append(result)
        let failure = result.failure()
        search.record(rate, passed: failure == nil)
        log(
            "  \(payloads.channel.rawValue) \(Int(rate))/s: acked \(Int(result.ackedPerSecond))/s, p50 "
                + "\(fmt(result.p50Milliseconds)) ms, p99 \(fmt(result.p99Milliseconds)) ms, refused \(result.refused), "
                + "errors \(result.errors), unsent \(result.unsent)" + (failure.map { " -> \($0)" } ?? " ok")
                + (result.errorSamples.isEmpty ? "" : " [\(result.errorSamples.joined(separator: "; "))]"))
        if failure == nil {
            report.knee = result
            kneeDeltas = (before, after, result.recordsAcked)
            report.peakRssAnonBytes = peak.peak
        } else {
            // Let the queue drain before the next step or channel.
            try? await Task.sleep(for: .seconds(3))
        }
    }
    if let (before, after, records) = kneeDeltas, records > 0 {
        let n = Double(records)
        if let b = before.proc, let a = after.proc {
            report.serverCPUMicrosPerRecord = Double(a.cpuTicks - b.cpuTicks) / ProcStats.ticksPerSecond * 1e6 / n
            if let bw = b.writeBytes, let aw = a.writeBytes { report.writeBytesPerRecord = Double(aw - bw) / n }
        }
        let wall = after.wall.timeIntervalSince(before.wall)
        if let b = before.busySeconds, let a = after.busySeconds, wall > 0 { report.writerBusy = (a - b) / wall }
        report.clientCores = (after.clientCPU - before.clientCPU) / wall
    }
    if let diskBefore, let diskAfter = server.diskBytes(), ackedTotal > 0 {
        report.diskBytesPerRecord = Double(diskAfter - diskBefore) / Double(ackedTotal)
    }
    return report
}

/// Samples a process's anonymous resident memory every 100 ms and keeps the peak.
final class PeakSampler: @unchecked Sendable {  // `peak` and `stopped` are written under `lock`
    private let pid: Int32?
    private let lock = NSLock()
    private var _peak: Int?
    private var stopped = false

    init(pid: Int32?) { self.pid = pid }

    var peak: Int? { lock.withLock { _peak } }

    func stop() { lock.withLock { stopped = true } }

    func run() async {
        guard let pid else { return }
        while !lock.withLock({ stopped }) {
            if let value = ProcStats.rssAnonBytes(pid: pid) { lock.withLock { _peak = max(_peak ?? 0, value) } }
            try? await Task.sleep(for: .milliseconds(100))
        }
    }
}

func fmt(_ value: Double?, _ digits: Int = 1) -> String {
    guard let value else { return "—" }
    return String(format: "%.\(digits)f", value)
}

func grouped(_ value: Double?) -> String {
    guard let value else { return "—" }
    let n = Int(value.rounded())
    let text = String(abs(n))
    var out = ""
    for (i, c) in text.reversed().enumerated() {
        if i > 0, i % 3 == 0 { out.append(",") }
        out.append(c)
    }
    return (n < 0 ? "-" : "") + String(out.reversed())
}
