import ArgumentParser
import Foundation
import SextantIngest
import SextantModel
import SextantStore

/// `sextant import`: backfill Envoy JSON access-log files into the database.
struct Import: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Backfill Envoy JSON access-log files (Istio's JSON format) into the database.",
        discussion: """
            File lines carry no proxy identity: name the proxy that wrote them with --node (its Envoy \
            node id), unless the lines carry a node_id key or Kubernetes keys added by a log shipper. \
            Works while `sextant serve` runs on the same data directory.
            """
    )

    @OptionGroup var store: StoreOptions

    @Option(
        help: ArgumentHelp(
            "Envoy node id of the proxy that wrote the files, e.g. sidecar~10.0.0.7~reviews-v2-7d8f9c6b4d-x2k9p.default~default.svc.cluster.local.",
            valueName: "node-id"))
    var node: String?

    @Option(help: ArgumentHelp("Lines per transaction.", valueName: "n"))
    var batchLines = 5000

    @Argument(help: ArgumentHelp("Access-log files, one JSON object per line.", valueName: "file"))
    var files: [String]

    func validate() throws {
        if let node, NodeIdentity(nodeID: node) == nil {
            throw ValidationError("--node '\(node)' is not an Envoy node id (type~ip~pod.namespace~domain)")
        }
        guard batchLines > 0 else { throw ValidationError("--batch-lines must be positive") }
    }

    func run() async throws {
        let logger = store.makeLogger()
        var configuration = SextantDatabase.Configuration(directory: store.dataDirectory)
        configuration.synchronousFull = store.sync == .full
        // A server may be running on the same directory: leave no rollups to it.
        configuration.rollupsInEveryCommit = true
        let database = try SextantDatabase(configuration: configuration, logger: logger)
        var limits = IngestLimits()
        limits.maxRecordsPerRequest = .max
        let decoder = EnvoyAccessLogDecoder(defaultProxy: node.flatMap(NodeIdentity.init(nodeID:))?.workload)
        var progress = Progress(enabled: isatty(STDERR_FILENO) == 1)
        let totalBytes = files.reduce(0) { total, file in
            total + ((try? FileManager.default.attributesOfItem(atPath: file)[.size] as? Int) ?? 0)
        }
        var failed = false
        var totals = (lines: 0, calls: 0, connections: 0, rejected: 0, bytesDone: 0)
        for file in files {
            guard let data = FileManager.default.contents(atPath: file) else {
                FileHandle.standardError.write(Data("sextant import: cannot read \(file)\n".utf8))
                failed = true
                continue
            }
            let bytes = [UInt8](data)
            var accepted = 0
            var rejected: [RecordError] = []
            var connections = 0
            var line = 1
            var start = 0
            while start < bytes.count {
                var end = start
                var lines = 0
                while end < bytes.count, lines < batchLines {
                    if bytes[end] == 0x0A { lines += 1 }
                    end += 1
                }
                var batch = decoder.decode(lines: Array(bytes[start..<end]), firstLine: line)
                // The same record rules as `serve` applies to an upload (negative or year-long
                // durations, clock skew, string lengths).
                _ = limits.apply(to: &batch, nowMicros: database.clock.nowMicros)
                _ = try await database.write([batch])
                accepted += batch.requests.count
                connections += batch.connections.count
                rejected += batch.rejected
                line += lines
                start = end
                progress.show(
                    file: file, lines: totals.lines + line - 1, bytes: totals.bytesDone + end, totalBytes: totalBytes)
            }
            progress.finish()
            print(
                "\(file): \(accepted) calls and \(connections) TCP connections stored, \(rejected.count) lines rejected")
            for error in rejected.prefix(20) { print("  \(error)") }
            if !rejected.isEmpty { failed = true }
            totals.lines += line - 1
            totals.calls += accepted
            totals.connections += connections
            totals.rejected += rejected.count
            totals.bytesDone += bytes.count
        }
        if files.count > 1 || progress.enabled {
            let seconds = progress.elapsedSeconds
            print(
                "imported \(files.count) file(s), \(totals.lines) lines (\(Progress.bytes(totals.bytesDone))) in "
                    + "\(Progress.clock(seconds)): \(totals.calls) calls, \(totals.connections) TCP connections, "
                    + "\(totals.rejected) rejected, \(Int(Double(totals.lines) / max(seconds, 0.001))) lines/s")
        }
        if failed { throw ExitCode(1) }
    }
}

/// A one-line progress display on a terminal (file, lines, bytes, rate, time left); silent otherwise.
struct Progress {
    let enabled: Bool
    private let started = ContinuousClock.now
    private var lastShown: ContinuousClock.Instant?

    init(enabled: Bool) {
        self.enabled = enabled
    }

    var elapsedSeconds: Double {
        let d = started.duration(to: .now).components
        return Double(d.seconds) + Double(d.attoseconds) / 1e18
    }

    /// Redraws the line at most ten times a second.
    mutating func show(file: String, lines: Int, bytes: Int, totalBytes: Int) {
        guard enabled else { return }
        if let lastShown, lastShown.duration(to: .now) < .milliseconds(100) { return }
        lastShown = .now
        let seconds = max(elapsedSeconds, 0.001)
        let rate = Double(bytes) / seconds
        let left = rate > 0 ? Double(max(totalBytes - bytes, 0)) / rate : 0
        let percent = totalBytes > 0 ? bytes * 100 / totalBytes : 100
        let text = "\(file): \(percent)% · \(lines) lines · \(Self.bytes(bytes)) of \(Self.bytes(totalBytes)) · "
            + "\(Int(Double(lines) / seconds)) lines/s · \(Self.clock(left)) left"
        FileHandle.standardError.write(Data("\r\u{1B}[K\(text)".utf8))
    }

    func finish() {
        guard enabled else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
    }

    static func bytes(_ n: Int) -> String {
        n >= 1 << 30 ? "\(n / (1 << 20) / 1024).\(n / (1 << 20) % 1024 * 10 / 1024) GiB"
            : n >= 1 << 20 ? "\(n >> 20) MiB" : n >= 1 << 10 ? "\(n >> 10) KiB" : "\(n) B"
    }

    /// `m:ss`, or `h:mm:ss` past an hour.
    static func clock(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        let two = { (n: Int) in n < 10 ? "0\(n)" : "\(n)" }
        return s >= 3600 ? "\(s / 3600):\(two(s / 60 % 60)):\(two(s % 60))" : "\(s / 60):\(two(s % 60))"
    }
}
