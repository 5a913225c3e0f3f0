import CSnappy
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import SextantLoadgen
import SextantWire
import Synchronization

/// Prometheus (Debian's 2.42) beside Sextant on the same series: remote-write ingest of 10k Istio
/// series and `/federate` of them.
/// What one server did with the same remote-write payloads and federation query.
struct MetricsServerFigures {
    var samplesPerSecond: Double
    var cores: Double?
    var federateMs: Double
    var federateBytes: Int
    /// `/metrics` with the ingested series (Sextant only).
    var metricsMs: Double?
    /// Bytes of the data directory after a clean stop.
    var diskBytes: Int
    /// The most anonymous memory the server held while it took the writes and answered.
    var peakRssAnonBytes: Int?
    /// Anonymous memory once the writes are in and the queries answered (12 s idle): what holding
    /// the series costs, without requests in flight.
    var settledRssAnonBytes: Int?
    var errors: [String]
}

struct PrometheusAnchorReport {
    var series: Int
    var samples: Int
    /// `/metrics` of a Sextant holding Istio series computed from calls (no ingested ones): about
    /// `series` of them (a label set makes 67: a counter and three histograms), then `series`
    /// label sets (at most 10,000).
    var computedMetrics: [ComputedScrape]
    var sextant: MetricsServerFigures
    var prometheus: MetricsServerFigures
    var victoria: MetricsServerFigures?
}

/// Prometheus 2.42 or VictoriaMetrics on loopback, each with a data directory of its own.
final class PeerProcess: @unchecked Sendable {  // set once in init
    enum Kind { case prometheus, victoriaMetrics }
    let port: Int
    let pid: Int32
    private let process: Process
    private let folder: String

    init(_ kind: Kind, binary: String, group: MultiThreadedEventLoopGroup) async throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("sextant-loadgen-peer-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: folder + "/data", withIntermediateDirectories: true)
        port = try ServerProcess.freePorts(1)[0]
        process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        switch kind {
        case .prometheus:
            try "global:\n  scrape_interval: 1h\n".write(toFile: folder + "/prometheus.yml", atomically: true, encoding: .utf8)
            process.arguments = [
                "--config.file=\(folder)/prometheus.yml", "--storage.tsdb.path=\(folder)/data",
                "--web.listen-address=127.0.0.1:\(port)", "--web.enable-remote-write-receiver",
            ]
        case .victoriaMetrics:
            // Samples are searchable as soon as they are in memory, as Prometheus's and Sextant's are.
            process.arguments = [
                "-storageDataPath=\(folder)/data", "-httpListenAddr=127.0.0.1:\(port)", "-search.latencyOffset=0s",
                "-retentionPeriod=1",
            ]
        }
        _ = FileManager.default.createFile(atPath: folder + "/prometheus.log", contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: folder + "/prometheus.log"))
        process.standardOutput = log
        process.standardError = log
        // The generator may run with a malloc counter preloaded (scripts/bench-ingest.sh); not the servers.
        process.environment = ProcessInfo.processInfo.environment.filter { $0.key != "LD_PRELOAD" }
        try process.run()
        pid = process.processIdentifier
        let ready = kind == .prometheus ? "/-/ready" : "/health"
        for _ in 0..<300 {
            if let (status, _) = try? await ServerProcess.get(port: port, path: ready, group: group), status == 200 { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        stop()
        throw LoadError("\(binary) not ready after 30 s")
    }

    /// Stops the server (SIGTERM: each writes what it holds in memory) and gives the bytes its
    /// data directory then holds.
    func stopAndMeasure() -> Int {
        terminate()
        return directoryBytes(folder + "/data")
    }

    func stop() {
        terminate()
        try? FileManager.default.removeItem(atPath: folder)
    }

    private func terminate() {
        if process.isRunning {
            kill(pid, SIGTERM)
            let deadline = Date().addingTimeInterval(20)
            while process.isRunning, Date() < deadline { usleep(50_000) }
            if process.isRunning { kill(pid, SIGKILL) }
            process.waitUntilExit()
        }
    }
}

/// Bytes of the regular files under a folder.
func directoryBytes(_ path: String) -> Int {
    guard let walker = FileManager.default.enumerator(atPath: path) else { return 0 }
    var total = 0
    while let name = walker.nextObject() as? String {
        let attributes = try? FileManager.default.attributesOfItem(atPath: path + "/" + name)
        if attributes?[.type] as? FileAttributeType == .typeRegular { total += (attributes?[.size] as? Int) ?? 0 }
    }
    return total
}

enum RemoteWritePayloads {
    /// 10k `istio_requests_total` series with Istio's labels, `rounds` samples each (10 s apart,
    /// the last a few seconds ago), as snappy-compressed WriteRequests of `seriesPerRequest` series;
    /// `[chunk][round]`, so one sender can keep a chunk's samples in time order.
    static func build(series: Int, rounds: Int, seriesPerRequest: Int) throws -> [[[UInt8]]] {
        let nowMs = Int64(Date().timeIntervalSince1970 * 1000) - 5000
        var labelSets: [[Prometheus_Label]] = []
        var index = 0
        outer: for source in 0..<(series + 99) / 100 {
            for destination in 0..<25 {
                for reporter in ["source", "destination"] {
                    for code in ["200", "503"] {
                        if index == series { break outer }
                        index += 1
                        let sourceWorkload = "svc-\(source)-v1"
                        let destinationService = "svc-\(destination + 100)"
                        let pairs: [(String, String)] = [
                            ("__name__", "istio_requests_total"), ("connection_security_policy", reporter == "destination" ? "mutual_tls" : "unknown"),
                            ("destination_app", destinationService), ("destination_canonical_revision", "v1"),
                            ("destination_canonical_service", destinationService), ("destination_cluster", "Kubernetes"),
                            ("destination_principal", "spiffe://cluster.local/ns/default/sa/\(destinationService)"),
                            ("destination_service", "\(destinationService).default.svc.cluster.local"),
                            ("destination_service_name", destinationService), ("destination_service_namespace", "default"),
                            ("destination_version", "v1"), ("destination_workload", "\(destinationService)-v1"),
                            ("destination_workload_namespace", "default"), ("grpc_response_status", ""),
                            ("instance", "10.0.\(source / 250).\(source % 250):15020"), ("job", "kubernetes-pods"),
                            ("reporter", reporter), ("request_protocol", "http"), ("response_code", code),
                            ("response_flags", "-"), ("source_app", "svc-\(source)"), ("source_canonical_revision", "v1"),
                            ("source_canonical_service", "svc-\(source)"), ("source_cluster", "Kubernetes"),
                            ("source_principal", "spiffe://cluster.local/ns/default/sa/svc-\(source)"),
                            ("source_version", "v1"), ("source_workload", sourceWorkload),
                            ("source_workload_namespace", "default"),
                        ]
                        labelSets.append(pairs.filter { !$0.1.isEmpty }.map { pair in Prometheus_Label.with { l in l.name = pair.0; l.value = pair.1 } })
                    }
                }
            }
        }
        var chunks: [[[UInt8]]] = []
        for start in stride(from: 0, to: labelSets.count, by: seriesPerRequest) {
            var bodies: [[UInt8]] = []
            for round in 0..<rounds {
                var request = Prometheus_WriteRequest()
                for (offset, labels) in labelSets[start..<min(start + seriesPerRequest, labelSets.count)].enumerated() {
                    var timeseries = Prometheus_TimeSeries()
                    timeseries.labels = labels
                    timeseries.samples = [
                        Prometheus_Sample.with {
                            $0.value = Double(round * 7 + offset % 13)
                            $0.timestamp = nowMs - Int64(rounds - 1 - round) * 10_000
                        }
                    ]
                    request.timeseries.append(timeseries)
                }
                bodies.append(snappy(try request.serializedBytes()))
            }
            chunks.append(bodies)
        }
        return chunks
    }

    static func snappy(_ input: [UInt8]) -> [UInt8] {
        var length = snappy_max_compressed_length(input.count)
        var out = [UInt8](repeating: 0, count: length)
        let status = input.withUnsafeBufferPointer { source in
            out.withUnsafeMutableBufferPointer { target in
                source.withMemoryRebound(to: CChar.self) { s in
                    target.withMemoryRebound(to: CChar.self) { t in
                        snappy_compress(s.baseAddress, s.count, t.baseAddress, &length)
                    }
                }
            }
        }
        precondition(status == SNAPPY_OK)
        return Array(out[..<length])
    }
}

/// Sends every chunk's bodies in round order (one sender per chunk), as fast as they are accepted.
func remoteWrite(
    chunks: [[[UInt8]]], port: Int, path: String, headers: [(String, String)], group: MultiThreadedEventLoopGroup
) async -> (seconds: Double, errors: [String]) {
    let errors = ErrorSamples()
    let clock = ContinuousClock()
    let start = clock.now
    await withTaskGroup(of: Void.self) { tasks in
        for chunk in chunks {
            tasks.addTask {
                do {
                    try await HTTPLoadConnection.with(port: port, group: group) { session in
                        for body in chunk {
                            // As Prometheus's sender does: a 429 or 503 is sent again after a pause,
                            // so that every sample counted was acknowledged.
                            var retries = 0
                            while true {
                                let answer = try await session.send(
                                    method: .POST, path: path, contentType: "application/x-protobuf", body: body,
                                    extraHeaders: headers)
                                if answer.status == 429 || answer.status == 503, retries < 200 {
                                    retries += 1
                                    try await Task.sleep(for: .milliseconds(50))
                                    continue
                                }
                                if !(200..<300).contains(answer.status) {
                                    errors.note("HTTP \(answer.status): \(String(buffer: answer.body).prefix(160))")
                                }
                                if retries > 0 { errors.note("retried \(retries)× after 429/503") }
                                break
                            }
                        }
                    }
                } catch {
                    errors.note("\(error)")
                }
            }
        }
    }
    return (Double((clock.now - start) / .microseconds(1)) / 1e6, errors.all)
}

/// Median time of `GET path` over `runs` runs, and the answer's size.
func timeGet(port: Int, path: String, runs: Int, group: MultiThreadedEventLoopGroup) async throws -> (Double, Int) {
    var times: [Double] = []
    var size = 0
    try await HTTPLoadConnection.with(port: port, group: group) { session in
        for _ in 0..<runs {
            let clock = ContinuousClock()
            let start = clock.now
            let answer = try await session.send(method: .GET, path: path, contentType: nil, body: nil)
            times.append(Double((clock.now - start) / .microseconds(1)) / 1000)
            guard answer.status == 200 else { throw LoadError("GET \(path): HTTP \(answer.status)") }
            size = answer.body.readableBytes
        }
    }
    return (Percentile.of(times.sorted(), 0.5) ?? 0, size)
}

func prometheusAnchor(
    prometheusBinary: String, victoriaBinary: String?, sextantBinary: String, series: Int, rounds: Int,
    group: MultiThreadedEventLoopGroup, log: (String) -> Void
) async throws -> PrometheusAnchorReport {
    let chunks = try RemoteWritePayloads.build(series: series, rounds: rounds, seriesPerRequest: 1000)
    let samples = chunks.reduce(0) { $0 + $1.count } * 1000
    func cpu(_ pid: Int32?) -> Int? { pid.flatMap { ProcStats.read(pid: $0)?.cpuTicks } }
    let headers = [("content-encoding", "snappy"), ("x-prometheus-remote-write-version", "0.1.0")]
    let query = "/federate?match%5B%5D=istio_requests_total"

    /// Remote write, then the federation query (and `/metrics`), on one server running alone.
    func measure(_ name: String, port: Int, pid: Int32?, metrics: Bool) async throws -> MetricsServerFigures {
        let peak = Mutex<Int?>(nil)
        let sampler = Task {
            while !Task.isCancelled {
                if let pid, let rss = ProcStats.rssAnonBytes(pid: pid) { peak.withLock { $0 = max($0 ?? 0, rss) } }
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
        defer { sampler.cancel() }
        let before = cpu(pid)
        let written = await remoteWrite(chunks: chunks, port: port, path: "/api/v1/write", headers: headers, group: group)
        let cores = zip(before, cpu(pid)).map { Double($1 - $0) / ProcStats.ticksPerSecond / written.seconds }
        log("  remote write to \(name): \(Int(Double(samples) / written.seconds)) samples/s \(written.errors)")
        // What a server has taken is searchable within a second or two (VictoriaMetrics' in-memory parts).
        try await Task.sleep(for: .seconds(2))
        _ = try await timeGet(port: port, path: query, runs: 2, group: group)
        let (ms, bytes) = try await timeGet(port: port, path: query, runs: 7, group: group)
        var metricsMs: Double?
        if metrics {
            _ = try await timeGet(port: port, path: "/metrics", runs: 1, group: group)
            metricsMs = try await timeGet(port: port, path: "/metrics", runs: 5, group: group).0
        }
        log("  /federate on \(name): \(fmt(ms)) ms (\(bytes) B)" + (metricsMs.map { ", /metrics \(fmt($0)) ms" } ?? ""))
        // Idle for longer than Sextant's memory guard goes without a trim (10 s).
        try await Task.sleep(for: .seconds(12))
        let settled = pid.flatMap { ProcStats.rssAnonBytes(pid: $0) }
        return MetricsServerFigures(
            samplesPerSecond: Double(samples) / written.seconds, cores: cores, federateMs: ms, federateBytes: bytes,
            metricsMs: metricsMs, diskBytes: 0, peakRssAnonBytes: peak.withLock { $0 }, settledRssAnonBytes: settled,
            errors: written.errors)
    }

    // Room for every series of the run under one metric name.
    let sextant = try await ServerProcess(
        binary: sextantBinary, extraArguments: ["--max-series-per-metric", "\(max(10_000, series))"], group: group)
    var sextantFigures = try await measure("sextant", port: sextant.ports.http, pid: sextant.pid, metrics: true)
    sextant.stop(keep: true)
    sextantFigures.diskBytes = sextant.diskBytes() ?? 0
    sextant.stop()

    let prometheus = try await PeerProcess(.prometheus, binary: prometheusBinary, group: group)
    var prometheusFigures = try await measure("prometheus", port: prometheus.port, pid: prometheus.pid, metrics: false)
    prometheusFigures.diskBytes = prometheus.stopAndMeasure()
    prometheus.stop()

    var victoriaFigures: MetricsServerFigures?
    if let victoriaBinary {
        let victoria = try await PeerProcess(.victoriaMetrics, binary: victoriaBinary, group: group)
        var figures = try await measure("victoria-metrics", port: victoria.port, pid: victoria.pid, metrics: false)
        figures.diskBytes = victoria.stopAndMeasure()
        victoria.stop()
        victoriaFigures = figures
    }
    var computed: [ComputedScrape] = []
    // At most 10,000 label sets: 670,000 series, half a gigabyte a scrape.
    for labelSets in [(series + 66) / 67, min(series, 10_000)] {
        computed.append(try await computedSeriesScrape(sextantBinary: sextantBinary, labelSets: labelSets, group: group, log: log))
    }
    return PrometheusAnchorReport(
        series: series, samples: samples, computedMetrics: computed, sextant: sextantFigures, prometheus: prometheusFigures, victoria: victoriaFigures)
}

/// A `/metrics` scrape of Istio's series computed from calls.
struct ComputedScrape {
    var labelSets: Int
    /// Lines of `istio_*` series.
    var series: Int
    var medianMs: Double
    var bytes: Int
    /// `/federate?match[]={__name__=~"istio_.*"}`: median ms and bytes.
    var federateMs: Double
    var federateBytes: Int
}

/// A Sextant given `labelSets` distinct Istio label sets through access-log lines (a sidecar per
/// 100, each answering with 100 response codes), scraped once they are counted: the cost of
/// `/metrics` for Istio's own series.
func computedSeriesScrape(
    sextantBinary: String, labelSets series: Int, group: MultiThreadedEventLoopGroup, log: (String) -> Void
) async throws -> ComputedScrape {
    let sextant = try await ServerProcess(binary: sextantBinary, extraArguments: ["--pairing-grace", "1"], group: group)
    defer { sextant.stop() }
    let codes = 100
    let sidecars = (series + codes - 1) / codes
    let start = ISO8601DateFormatter().string(from: Date())
    try await HTTPLoadConnection.with(port: sextant.ports.http, group: group) { session in
        for sidecar in 0..<sidecars {
            var body = ""
            for code in 0..<min(codes, series - sidecar * codes) {
                body += """
                    {"start_time":"\(start)","duration":4,"response_code":\(200 + code),"response_flags":"-",\
                    "request_id":"r-\(sidecar)-\(code)","upstream_cluster":"inbound|9080||","protocol":"HTTP/1.1",\
                    "authority":"svc\(sidecar):9080","bytes_received":10,"bytes_sent":300,\
                    "downstream_local_address":"10.1.\(sidecar / 250).\(sidecar % 250 + 1):9080",\
                    "downstream_remote_address":"10.2.0.1:4\(code)"}

                    """
            }
            let node = "sidecar~10.1.\(sidecar / 250).\(sidecar % 250 + 1)~app\(sidecar)-v1-6b7f9c8d4-x2k9p.mesh~mesh.svc.cluster.local"
            let answer = try await session.send(
                method: .POST, path: "/api/v1/accesslogs?node=\(JSONPayloads.percentEncoded(node))", contentType: "application/x-ndjson",
                body: Array(body.utf8))
            guard answer.status == 200 else { throw LoadError("access-log upload: HTTP \(answer.status)") }
        }
    }
    // Counted once the grace (1 s) has passed.
    try await Task.sleep(for: .seconds(3))
    _ = try await timeGet(port: sextant.ports.http, path: "/metrics", runs: 2, group: group)
    let (ms, bytes) = try await timeGet(port: sextant.ports.http, path: "/metrics", runs: 7, group: group)
    let federate = "/federate?match%5B%5D=%7B__name__%3D~%22istio_.%2A%22%7D"
    _ = try await timeGet(port: sextant.ports.http, path: federate, runs: 1, group: group)
    let (federateMs, federateBytes) = try await timeGet(port: sextant.ports.http, path: federate, runs: 5, group: group)
    let text = try await fetchText(port: sextant.ports.http, path: "/metrics", group: group)
    let lines = text.split(separator: "\n")
    let labelSets = lines.filter { $0.hasPrefix("istio_requests_total{") }.count
    let istio = lines.filter { $0.hasPrefix("istio_") }.count
    log(
        "  \(labelSets) computed Istio label sets (\(istio) istio_* series): /metrics \(fmt(ms)) ms (\(bytes) B), "
            + "/federate \(fmt(federateMs)) ms (\(federateBytes) B)")
    return ComputedScrape(
        labelSets: labelSets, series: istio, medianMs: ms, bytes: bytes, federateMs: federateMs,
        federateBytes: federateBytes)
}

/// The body of one `GET path`, as text.
func fetchText(port: Int, path: String, group: MultiThreadedEventLoopGroup) async throws -> String {
    var text = ""
    try await HTTPLoadConnection.with(port: port, group: group) { session in
        let answer = try await session.send(method: .GET, path: path, contentType: nil, body: nil)
        text = String(buffer: answer.body)
    }
    return text
}

private func zip(_ a: Int?, _ b: Int?) -> (Int, Int)? {
    guard let a, let b else { return nil }
    return (a, b)
}
