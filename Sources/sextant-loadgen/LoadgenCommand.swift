import ArgumentParser
import Foundation
import NIOPosix
import SextantLoadgen

/// `sextant-loadgen`: Sextant's ingest benchmark of record (README, "Ingest (sextant-loadgen)").
@main
struct LoadgenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sextant-loadgen",
        abstract: "Open-loop ingest load generator for Sextant, with decoder, store and anchor benchmarks.",
        discussion: """
            Starts its own `sextant serve` (--sextant-bin) on free loopback ports with a temporary data \
            dir, pre-fills an hour of data, then steps each channel's rate up (x --factor) to its knee: \
            the highest rate whose p99 stays under 1 s with nothing refused or failed and the rate \
            delivered. Prints Markdown tables. All traffic goes to 127.0.0.1.
            """)

    enum Mode: String, ExpressibleByArgument, CaseIterable {
        case load, floor, decoders, store, sqlite, prometheus
    }

    @Option(
        help:
            "Parts to run, comma-separated: load, floor (the HTTP channels against a server that only reads bodies), decoders, store, sqlite, prometheus."
    )
    var modes = "load,decoders,store,sqlite,prometheus"

    @Option(help: "Channels, comma-separated: zipkin, accesslog, otlp-grpc, otlp-http, als.")
    var channels = "zipkin,accesslog,otlp-grpc,otlp-http,als"

    @Option(help: "The sextant binary to start.")
    var sextantBin = ".build/release/sextant"

    @Option(help: "Target a running sextant instead: its HTTP, Zipkin, gRPC and OTLP/HTTP ports, e.g. 9876,9411,4317,4318.")
    var targetPorts: String?

    @Option(help: "With --target-ports: the running server's pid, for its /proc readings.")
    var serverPid: Int32?

    @Option(
        help: """
            Connections (HTTP/1.1 or HTTP/2) per channel, each with one request in flight: a rate needs \
            at least rate x latency requests in flight, and every answer waits for a durable commit.
            """)
    var connections = 64

    @Option(help: "Records per request (spans, lines, or ALS entries per message).")
    var batch = 50

    @Option(
        help:
            "Rounds of a sidecar's ALS entries sent on one stream. Envoy keeps its stream open, names itself in the first message only and sends a message per 16 KiB or second; a stream's end is the only acknowledgement ALS has."
    )
    var alsStreamRounds = 8

    @Option(help: "First target rate, records/s.")
    var startRate: Double = 5000

    @Option(help: "Each step's rate is the previous one times this.")
    var factor: Double = 1.15

    @Option(help: "Most steps per channel (28 from 5,000/s x1.15 end at 218,225/s, past every target).")
    var maxSteps = 28

    @Option(
        help:
            "Steps after the first failure, each at the geometric mean of the highest rate that passed and the lowest that failed: the knee is found within factor^(1/2^n) (2 steps: 3.6 % at x1.15)."
    )
    var refineSteps = 2

    @Option(help: "Seconds per step.")
    var stepSeconds: Double = 8

    @Option(help: "Records pre-filled (spread over the past hour) before the load, half spans, half access-log lines.")
    var prefillRecords = 200_000

    @Option(help: "Records per channel in the store-alone benchmark.")
    var storeRecords = 100_000

    @Option(help: "Rows of the raw SQLite anchor.")
    var sqliteRows = 300_000

    @Option(help: "The Prometheus binary of the anchor.")
    var prometheusBin = "/usr/bin/prometheus"

    @Option(help: "VictoriaMetrics single-node binary for the metrics anchor (skipped when missing).")
    var victoriaBin = "/usr/bin/victoria-metrics"

    @Option(help: "Remote-write rounds of the metrics anchor (samples per series).")
    var remoteWriteRounds = 20

    @Option(help: "Istio-shaped series of the metrics anchor.")
    var metricSeries = 10_000

    @Option(help: "Seconds each decoder runs alone.")
    var decoderSeconds: Double = 3

    @Option(help: .hidden)
    var floorServerPort: Int?

    @Flag(help: "A short run for tests: two short steps per channel, small pre-fill, load mode only unless --modes is given.")
    var quick = false

    mutating func validate() throws {
        guard (1...1024).contains(connections) else { throw ValidationError("--connections must be 1...1024") }
        guard batch > 0, alsStreamRounds > 0, startRate > 0, factor > 1, maxSteps > 0, refineSteps >= 0, stepSeconds > 0 else {
            throw ValidationError("--batch, --als-stream-rounds, --start-rate, --max-steps and --step-seconds must be positive, --factor above 1")
        }
        for mode in modes.split(separator: ",") where Mode(rawValue: String(mode)) == nil {
            throw ValidationError("unknown mode '\(mode)'")
        }
        for channel in channels.split(separator: ",") where LoadChannel(rawValue: String(channel)) == nil {
            throw ValidationError("unknown channel '\(channel)'")
        }
    }

    func run() async throws {
        if let floorServerPort {
            try await HTTPFloorServer.run(port: floorServerPort)
            return
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        do {
            try await measure(group: group)
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
        try await group.shutdownGracefully()
    }

    private func measure(group: MultiThreadedEventLoopGroup) async throws {
        var modes = Set(self.modes.split(separator: ",").compactMap { Mode(rawValue: String($0)) })
        var stepSeconds = self.stepSeconds
        var maxSteps = self.maxSteps
        var prefillRecords = self.prefillRecords
        if quick {
            if self.modes == "load,decoders,store,sqlite,prometheus" { modes = [.load] }
            stepSeconds = min(stepSeconds, 1.5)
            maxSteps = min(maxSteps, 2)
            prefillRecords = min(prefillRecords, 2000)
        }
        let channels = self.channels.split(separator: ",").compactMap { LoadChannel(rawValue: String($0)) }
        func log(_ line: String) {
            FileHandle.standardError.write(Data((line + "\n").utf8))
        }
        let root = FileManager.default.currentDirectoryPath
        ProtobufPayloads.loadFixtureIdentifier(repositoryRoot: root)
        let driverRequests = max(2, batch * 2 / 7)  // productpage's batch is about `batch` records
        let payloads = try channels.map {
            try ChannelPayloads(
                channel: $0, driverRequestsPerRound: driverRequests * ($0 == .als ? alsStreamRounds : 1), batch: batch,
                seed: 0x5EC7A17)
        }
        var output: [String] = []
        output.append(
            "sextant-loadgen: \(ProcessInfo.processInfo.activeProcessorCount) CPUs, \(connections) connections, "
                + "\(batch) records per request (ALS: messages of \(batch) entries, \(alsStreamRounds) rounds a stream), steps of \(fmt(stepSeconds)) s from \(Int(startRate))/s x\(factor)")

        if modes.contains(.load) {
            let server: ServerProcess
            if let targetPorts {
                let p = targetPorts.split(separator: ",").compactMap { Int($0) }
                guard p.count == 4 else { throw ValidationError("--target-ports needs four ports") }
                server = ServerProcess(
                    ports: TargetPorts(http: p[0], zipkin: p[1], grpc: p[2], otlpHTTP: p[3]), pid: serverPid,
                    dataDirectory: nil)
            } else {
                log("starting \(sextantBin)")
                server = try await ServerProcess(binary: sextantBin, extraArguments: [], group: group)
            }
            do {
                let rates = OpenLoopSchedule.steps(from: startRate, factor: factor, count: maxSteps)
                // An hour of spans and calls before any measurement.
                let fill = try [LoadChannel.zipkin, .accesslog].map {
                    try ChannelPayloads(channel: $0, driverRequestsPerRound: driverRequests, batch: batch, seed: 0xF111)
                }
                let fillStart = Date()
                var filled = 0
                for fillPayloads in fill {
                    let runner = OpenLoopRunner(payloads: fillPayloads, ports: server.ports, connections: connections, group: group)
                    let (acked, errors) = await runner.prefill(records: prefillRecords / 2, spanSeconds: 3600)
                    filled += acked
                    if !errors.isEmpty { log("  pre-fill \(fillPayloads.channel.rawValue) errors: \(errors)") }
                }
                log("pre-filled \(filled) records over the past hour in \(fmt(Date().timeIntervalSince(fillStart))) s")
                var reports: [ChannelReport] = []
                for channelPayloads in payloads {
                    log("channel \(channelPayloads.channel.rawValue)")
                    reports.append(
                        await benchChannel(
                            channelPayloads, server: server, connections: connections, rates: rates,
                            refineSteps: refineSteps, stepSeconds: stepSeconds, group: group, log: log))
                }
                output.append("")
                output.append("Pre-filled: \(grouped(Double(filled))) records (Zipkin spans and access-log lines) over the past hour.")
                output.append("")
                output += loadTable(reports)
                if quick {
                    let acked = reports.reduce(0) { $0 + $1.steps.reduce(0) { $0 + $1.recordsAcked } }
                    let errors = reports.reduce(0) { $0 + $1.steps.reduce(0) { $0 + $1.errors } }
                    output.append("")
                    output.append("quick: acked \(acked) records, \(errors) errors")
                }
            } catch {
                server.stop()
                throw error
            }
            server.stop()
        }

        if modes.contains(.floor) {
            let floorPayloads = payloads.filter { [.zipkin, .accesslog, .otlpHTTP].contains($0.channel) }
            if !floorPayloads.isEmpty {
                log("HTTP floor")
                let server = try await ServerProcess(floorOf: Bundle.main.executablePath ?? CommandLine.arguments[0], group: group)
                let rates = OpenLoopSchedule.steps(from: startRate, factor: factor, count: maxSteps)
                var reports: [ChannelReport] = []
                for channelPayloads in floorPayloads {
                    reports.append(
                        await benchChannel(
                            channelPayloads, server: server, connections: connections, rates: rates,
                            refineSteps: refineSteps, stepSeconds: stepSeconds, group: group, log: log))
                }
                server.stop()
                output.append("")
                output += floorTable(reports, lastRate: rates.last ?? startRate)
            }
        }

        if modes.contains(.decoders) {
            log("decoders alone")
            let reports = try benchDecoders(payloads, seconds: quick ? 0.3 : decoderSeconds, log: log)
            output.append("")
            output.append("| decoder alone (same bodies; fastest of twenty slices, thread CPU time) | records/s | CPU µs/record | allocations/record |")
            output.append("|---|---:|---:|---:|")
            for r in reports {
                output.append(
                    "| \(r.channel.label) | \(grouped(r.recordsPerSecond)) | \(fmt(r.microsPerRecord, 2)) | \(fmt(r.allocationsPerRecord)) |")
            }
        }

        if modes.contains(.store) {
            log("store alone")
            let storeChannels = payloads.filter { [.zipkin, .accesslog, .als].contains($0.channel) }
            let reports = try await benchStore(
                storeChannels, prefillRecords: quick ? 2000 : prefillRecords, records: quick ? 2000 : storeRecords,
                concurrency: connections, log: log)
            output.append("")
            output.append(
                "| store alone (IngestWriter, pre-decoded, sync full, after an hour) | records | records/s | CPU µs/record "
                    + "| disk B/record as committed | disk B/record, span blocks merged | by table, merged |")
            output.append("|---|---:|---:|---:|---:|---:|---|")
            for r in reports {
                output.append(
                    "| \(r.channel.label) | \(grouped(Double(r.records))) | \(grouped(r.recordsPerSecond)) | "
                        + "\(String(format: "%.1f", r.cpuMicrosPerRecord)) | "
                        + "\(grouped(r.diskBytesPerRecord)) | \(grouped(r.mergedBytesPerRecord)) | \(r.mergedByTable) |")
            }
        }

        if modes.contains(.sqlite) {
            log("raw SQLite anchor")
            let round = BookinfoRound(driverRequests: 50, seed: 7)
            let report = try rawSQLiteAnchor(round: round, rows: quick ? 5000 : sqliteRows)
            output.append("")
            output.append("| anchor: raw SQLite (C API, PK (trace_id, span_id) + (service, start) index, WAL, sync FULL, 1,000 rows/txn) | rows | rows/s | bytes/row |")
            output.append("|---|---:|---:|---:|")
            output.append("| same span rows (20 tags as JSON text) | \(grouped(Double(report.rows))) | \(grouped(report.rowsPerSecond)) | \(grouped(report.bytesPerRow)) |")
        }

        if modes.contains(.prometheus) {
            if FileManager.default.isExecutableFile(atPath: prometheusBin) {
                log("Prometheus anchor")
                let victoria = FileManager.default.isExecutableFile(atPath: victoriaBin) ? victoriaBin : nil
                let r = try await prometheusAnchor(
                    prometheusBinary: prometheusBin, victoriaBinary: victoria, sextantBinary: sextantBin, series: metricSeries,
                    rounds: quick ? 2 : remoteWriteRounds, group: group, log: log)
                output.append("")
                output.append(contentsOf: Self.metricsAnchorTable(r))
                if victoria == nil {
                    output.append("")
                    output.append("VictoriaMetrics skipped: \(victoriaBin) not found (apt-get install victoria-metrics).")
                }
            } else {
                output.append("")
                output.append("Prometheus anchor skipped: \(prometheusBin) not found (apt-get install prometheus).")
            }
        }
        print(output.joined(separator: "\n"))
    }

    /// Remote write, `/federate`, `/metrics` and disk, Sextant beside Prometheus and VictoriaMetrics.
    static func metricsAnchorTable(_ r: PrometheusAnchorReport) -> [String] {
        let servers = [("Sextant", r.sextant), ("Prometheus 2.42", r.prometheus)] + (r.victoria.map { [("VictoriaMetrics", $0)] } ?? [])
        func row(_ label: String, _ value: (MetricsServerFigures) -> String, goal: String) -> String {
            "| \(label) | " + servers.map { value($0.1) }.joined(separator: " | ") + " | \(goal) |"
        }
        let computedRows = r.computedMetrics.flatMap { c in
            let label = "\(grouped(Double(c.series))) `istio_*` series computed from calls (\(grouped(Double(c.labelSets))) label sets)"
            let rest = String(repeating: " |", count: servers.count - 1)
            return [
                "| `/metrics`, \(label), median ms | \(fmt(c.medianMs)) (\(grouped(Double(c.bytes))) B) |" + rest
                    + (c.series <= 11_000 ? " ≤ 100 ms |" : " |"),
                "| `/federate?match[]={__name__=~\"istio_.*\"}`, \(label), median ms | "
                    + "\(fmt(c.federateMs)) (\(grouped(Double(c.federateBytes))) B) |" + rest + " |",
            ]
        }
        var lines = [
            "| \(grouped(Double(r.series))) Istio series, \(grouped(Double(r.samples))) samples | " + servers.map(\.0).joined(separator: " | ") + " | goal |",
            "|---|" + servers.map { _ in "---:|" }.joined() + "---|",
            // One sender (connection) per 1,000 series, each sending its series' rounds in turn.
            row("remote write, samples/s (\((r.series + 999) / 1000) senders)", { grouped($0.samplesPerSecond) }, goal: "≥ 2× Prometheus, ≥ VictoriaMetrics"),
            row("remote write, cores used", { fmt($0.cores, 2) }, goal: ""),
            row("`/federate?match[]=istio_requests_total`, median ms", { "\(fmt($0.federateMs)) (\(grouped(Double($0.federateBytes))) B)" },
                goal: "≤ 0.5× Prometheus, ≤ VictoriaMetrics"),
            row("`/metrics`, median ms", { $0.metricsMs.map { fmt($0) } ?? "" }, goal: "≤ 100 ms"),
        ] + computedRows + [
            row("data directory after a clean stop, B/sample", { fmt(Double($0.diskBytes) / Double(r.samples), 1) }, goal: "≤ Prometheus"),
            row("RssAnon: peak while taking the writes, MB", { fmt($0.peakRssAnonBytes.map { Double($0) / 1_048_576 }, 0) }, goal: ""),
            row("RssAnon: settled, holding the series, MB", { fmt($0.settledRssAnonBytes.map { Double($0) / 1_048_576 }, 0) },
                goal: "≤ 150 MB at 100k series"),
        ]
        let p = r.prometheus
        var ratios = "Sextant ÷ Prometheus: remote write \(fmt(r.sextant.samplesPerSecond / p.samplesPerSecond, 2))×, "
            + "/federate \(fmt(r.sextant.federateMs / p.federateMs, 2))×"
        if let v = r.victoria {
            ratios += "; ÷ VictoriaMetrics: remote write \(fmt(r.sextant.samplesPerSecond / v.samplesPerSecond, 2))×, "
                + "/federate \(fmt(r.sextant.federateMs / v.federateMs, 2))×"
        }
        lines.append("")
        lines.append(ratios + ".")
        for (name, figures) in servers where !figures.errors.isEmpty {
            lines.append("remote-write errors, \(name): \(figures.errors)")
        }
        return lines
    }

    /// The HTTP floor's knee and cost per channel, beside nothing else: Sextant's figures are the
    /// load table's.
    func floorTable(_ reports: [ChannelReport], lastRate: Double) -> [String] {
        var lines = [
            "| HTTP floor: same load, a NIO server that reads each body and answers (open loop, knee: p99 < 1 s) | knee target/s | p99 ms | floor CPU µs/record | generator cores |",
            "|---|---:|---:|---:|---:|",
        ]
        for r in reports {
            guard let knee = r.knee else {
                lines.append("| \(r.channel.label) | none (first step: \(r.steps.first?.failure() ?? "not run")) | — | — | — |")
                continue
            }
            // The last step passed: the floor is at least that.
            let capped = r.pastKnee == nil && knee.targetRecordsPerSecond >= lastRate
            lines.append(
                "| \(r.channel.label) | \(capped ? "≥ " : "")\(grouped(knee.targetRecordsPerSecond)) | "
                    + "\(fmt(knee.p99Milliseconds)) | \(fmt(r.serverCPUMicrosPerRecord)) | \(fmt(r.clientCores, 2)) |")
        }
        return lines
    }

    func loadTable(_ reports: [ChannelReport]) -> [String] {
        var lines = [
            "| channel (open loop, knee: p99 < 1 s, nothing refused) | knee target/s | acked records/s | p50 ms | p99 ms | server CPU µs/record | written B/record | disk B/record | peak RssAnon MB | writer busy | generator cores |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in reports {
            guard let knee = r.knee else {
                let first = r.steps.first
                lines.append(
                    "| \(r.channel.label) | none (first step: \(first?.failure() ?? "not run")) | — | — | — | — | — | \(grouped(r.diskBytesPerRecord)) | — | — | — |")
                continue
            }
            lines.append(
                "| \(r.channel.label) | \(grouped(knee.targetRecordsPerSecond)) | \(grouped(knee.ackedPerSecond)) | "
                    + "\(fmt(knee.p50Milliseconds)) | \(fmt(knee.p99Milliseconds)) | \(fmt(r.serverCPUMicrosPerRecord)) | "
                    + "\(grouped(r.writeBytesPerRecord)) | \(grouped(r.diskBytesPerRecord)) | "
                    + "\(fmt(r.peakRssAnonBytes.map { Double($0) / 1_048_576 })) | "
                    + "\(r.writerBusy.map { "\(Int($0 * 100)) %" } ?? "n/a") | \(fmt(r.clientCores, 2)) |")
        }
        let failures = reports.compactMap { r -> String? in
            guard let failed = r.pastKnee else { return nil }
            return "\(r.channel.rawValue) at \(grouped(failed.targetRecordsPerSecond))/s: \(failed.failure()!)"
        }
        if !failures.isEmpty {
            lines.append("")
            lines.append("Step past the knee: " + failures.joined(separator: "; ") + ".")
        }
        return lines
    }
}
