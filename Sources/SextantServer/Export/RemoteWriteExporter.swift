import AsyncHTTPClient
import CSnappy
import Foundation
import Logging
import Metrics
import NIOCore
import SextantStore
import SextantWire
import ServiceLifecycle
import SwiftProtobuf

/// Where Sextant remote-writes (flags `--remote-write-url`, `--remote-write-token-file`,
/// `--external-label`, `--remote-write-interval`, `--remote-write-queue-bytes`).
package struct RemoteWriteConfiguration: Sendable {
    /// Receivers, each with a queue of its own.
    package var urls: [String] = []
    /// Sent as `Authorization: Bearer` to every receiver.
    package var bearerToken: String?
    /// Added to every series that does not carry the label (Prometheus's `external_labels`).
    package var externalLabels: [(name: String, value: String)] = []
    /// Seconds between snapshots of the series (default 15).
    package var intervalSeconds: Double = 15
    /// Bytes each receiver's queue keeps on disk before it drops its oldest requests (default 256 MiB).
    package var queueBytes = 256 << 20
    /// Series per request (Prometheus's `max_samples_per_send`).
    package var seriesPerRequest = 2_000

    package init() {}
}

/// Prometheus remote write 1.0 (protobuf, snappy) of Istio's series computed from calls and of
/// the ingested series, to every configured receiver.
///
/// Every interval the series are snapshotted once: Istio's counters and histograms at that time,
/// and each ingested series' newest sample if it is newer than the one sent before. The requests
/// go to each receiver's durable queue (`ExportQueue`), and a sender per receiver sends them
/// oldest first: a 2xx takes a request off the queue, a 429, a 5xx or a failed connection is
/// retried with backoff (1 s doubling to 30 s, or the receiver's `Retry-After`), any other answer
/// drops it (the receiver will never take it) and says so.
struct RemoteWriteExporter: Service {
    let configuration: RemoteWriteConfiguration
    let database: SextantDatabase
    let metrics: SelfMetrics
    let logger: Logger
    let queues: [(url: String, queue: ExportQueue)]

    init(configuration: RemoteWriteConfiguration, database: SextantDatabase, metrics: SelfMetrics, logger: Logger) throws {
        self.configuration = configuration
        self.database = database
        self.metrics = metrics
        self.logger = logger
        let root = URL(fileURLWithPath: (database.path as NSString).deletingLastPathComponent)
            .appendingPathComponent("remote-write")
        queues = try configuration.urls.map { url in
            (url, try ExportQueue(folder: root.appendingPathComponent(Self.folderName(url)), maxBytes: configuration.queueBytes))
        }
    }

    /// A folder name per receiver that survives restarts: its host and a hash of the whole URL.
    static func folderName(_ url: String) -> String {
        let host = URLComponents(string: url)?.host ?? "receiver"
        let safe = host.map { $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" ? $0 : "_" }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in url.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return String(safe) + "-" + String(hash, radix: 16)
    }

    func run() async throws {
        // A service of a ServiceGroup runs until the group shuts down.
        guard !queues.isEmpty else { return try await gracefulShutdown() }
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { await snapshots() }
            for (url, queue) in queues {
                group.addTask { await send(url: url, queue: queue) }
            }
        }
    }

    // MARK: - Snapshots

    private func snapshots() async {
        await cancelWhenGracefulShutdown {
            var sent: [Int32: Int64] = [:]
            // At a fixed rate, as Prometheus scrapes: a snapshot's own time does not stretch the interval.
            let interval = Duration.seconds(configuration.intervalSeconds)
            var next = ContinuousClock.now
            while !Task.isCancelled {
                do {
                    try await snapshot(sentIngested: &sent)
                } catch {
                    logger.error("remote-write snapshot failed", metadata: ["error": "\(error)"])
                }
                next = max(next + interval, .now)
                try? await Task.sleep(until: next, clock: .continuous)
            }
        }
    }

    /// Queues one snapshot for every receiver.
    func snapshot(sentIngested: inout [Int32: Int64]) async throws {
        let now = database.clock.nowMillis
        var series: [Prometheus_TimeSeries] = []
        let istio = try SeriesSelector(parsing: #"{__name__=~"istio_.*"}"#)
        for s in IstioMetrics.federated(try await database.istioTotals(), selectors: [istio], now: now) {
            series.append(timeSeries(name: s.name, labels: (0..<s.labelCount).map(s.label), value: s.value, timeMs: now))
        }
        let view = database.metricHead.view()
        for slot in view.federationOrder() {
            guard let latest = view.latest(slot), latest.timeMs > sentIngested[slot] ?? .min else { continue }
            sentIngested[slot] = latest.timeMs
            let name = view.name(slot)
            // Istio's series Sextant computes win over the same names written to it.
            if IstioMetrics.names.contains(name) { continue }
            let labels = (0..<view.labelCount(slot)).map { view.label(slot, $0) }
            series.append(timeSeries(name: name, labels: labels, value: latest.value, timeMs: latest.timeMs))
        }
        var start = 0
        while start < series.count {
            let end = min(series.count, start + configuration.seriesPerRequest)
            var request = Prometheus_WriteRequest()
            request.timeseries = Array(series[start..<end])
            let body = Self.snappy(try request.serializedBytes())
            for (url, queue) in queues {
                let dropped = try queue.append(body: body, records: end - start)
                if dropped > 0 { count(url, "dropped", dropped) }
                gauges(url, queue)
            }
            start = end
        }
    }

    private func timeSeries(name: String, labels: [(name: String, value: String)], value: Double, timeMs: Int64)
        -> Prometheus_TimeSeries
    {
        var all = [("__name__", name)] + labels.filter { !$0.value.isEmpty }.map { ($0.name, $0.value) }
        for external in configuration.externalLabels where !all.contains(where: { $0.0 == external.name }) {
            all.append((external.name, external.value))
        }
        all.sort { $0.0 < $1.0 }
        var s = Prometheus_TimeSeries()
        s.labels = all.map { pair in
            var label = Prometheus_Label()
            label.name = pair.0
            label.value = pair.1
            return label
        }
        var sample = Prometheus_Sample()
        sample.value = value
        sample.timestamp = timeMs
        s.samples = [sample]
        return s
    }

    static func snappy(_ input: [UInt8]) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: snappy_max_compressed_length(input.count))
        var length = output.count
        let status = input.withUnsafeBufferPointer { source in
            output.withUnsafeMutableBufferPointer { target in
                source.withMemoryRebound(to: CChar.self) { s in
                    target.withMemoryRebound(to: CChar.self) { t in
                        snappy_compress(s.baseAddress, s.count, t.baseAddress, &length)
                    }
                }
            }
        }
        precondition(status == SNAPPY_OK, "snappy_compress has room by construction")
        output.removeSubrange(length...)
        return output
    }

    // MARK: - Sending

    private func send(url: String, queue: ExportQueue) async {
        let token = configuration.bearerToken
        await QueueSender(queue: queue).run(
            body: { $0[0].body },
            deliver: { body in
                do {
                    let answer = try await ExportPost.send(
                        body, to: url,
                        headers: [
                            ("Content-Type", "application/x-protobuf"), ("Content-Encoding", "snappy"),
                            ("X-Prometheus-Remote-Write-Version", "0.1.0"),
                        ], token: token)
                    if (200..<300).contains(answer.code) { return .accepted(rejected: 0) }
                    if answer.code != 429 && answer.code < 500 { return .refused("HTTP \(answer.code)") }
                    return .retry(after: answer.retryAfter)
                } catch {
                    logger.debug("remote write failed", metadata: ["remote_write.url": "\(url)", "error": "\(error)"])
                    return .retry(after: nil)
                }
            },
            count: { outcome, samples in count(url, outcome == .rejected ? "dropped" : outcome.rawValue, samples) },
            refused: { reason in
                logger.error(
                    "remote-write receiver refused a request for good; dropped",
                    metadata: ["remote_write.url": "\(url)", "reason": "\(reason)"])
            },
            idle: { gauges(url, queue) })
    }

    private func count(_ url: String, _ outcome: String, _ samples: Int) {
        metrics.count("sextant_remote_write_samples_total", [("url", url), ("outcome", outcome)], samples)
    }

    private func gauges(_ url: String, _ queue: ExportQueue) {
        queue.report("sextant_remote_write_queue", dimensions: [("url", url)], to: metrics)
    }
}
