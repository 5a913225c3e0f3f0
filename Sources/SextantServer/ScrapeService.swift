import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import SextantIngest
import SextantModel
import ServiceLifecycle

/// Scrapes static Prometheus text targets (an Envoy's `/stats/prometheus`) every interval.
///
/// An Envoy admin target names its proxy: `/server_info` carries the node id, which gives the
/// series the proxy's `namespace`, `workload` and `pod` labels; other targets get `instance`.
final class ScrapeService: Service, Sendable {
    private let targets: [URL]
    private let interval: Duration
    private let sink: IngestSink
    private let directory: ProxyDirectory
    private let metrics: SelfMetrics
    private let logger: Logger

    init(targets: [URL], intervalSeconds: Double, sink: IngestSink, directory: ProxyDirectory, metrics: SelfMetrics, logger: Logger) {
        self.targets = targets
        interval = .milliseconds(Int64(intervalSeconds * 1000))
        self.sink = sink
        self.directory = directory
        self.metrics = metrics
        self.logger = logger
    }

    func run() async throws {
        guard !targets.isEmpty else {
            // Returning would end the whole service group: idle until shutdown instead.
            try await gracefulShutdown()
            return
        }
        // Scraping just stops on shutdown: nothing it holds needs draining.
        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                for target in self.targets {
                    group.addTask {
                        var labels: [MetricLabelPair]?
                        while !Task.isCancelled {
                            if labels == nil { labels = await self.identify(target) }
                            await self.scrape(target, labels: labels ?? [MetricLabelPair("instance", target.hostAndPort)])
                            try? await Task.sleep(for: self.interval)
                        }
                    }
                }
            }
        }
    }

    private func scrape(_ target: URL, labels: [MetricLabelPair]) async {
        let url = target.absoluteString
        do {
            let body = try await Self.get(url, accept: "text/plain;version=0.0.4", timeout: .seconds(10))
            let batch = PrometheusTextDecoder().decode(
                String(buffer: body), extraLabels: labels, nowMs: sink.clock.nowMillis)
            try await sink.store(batch, channel: "scrape")
            metrics.count("sextant_scrapes_total", [("target", url), ("outcome", "success")])
        } catch {
            sink.count(error, channel: "scrape")
            metrics.count("sextant_scrapes_total", [("target", url), ("outcome", "failure")])
            logger.debug("scrape failed", metadata: ["scrape.target": "\(url)", "error": "\(error)"])
        }
    }

    /// The proxy's identity from Envoy's `/server_info`, if the target is an Envoy admin endpoint.
    private func identify(_ target: URL) async -> [MetricLabelPair]? {
        guard target.path.hasSuffix("/stats/prometheus"),
            let info = URL(string: "/server_info", relativeTo: target)?.absoluteURL,
            let body = try? await Self.get(info.absoluteString, accept: "application/json", timeout: .seconds(5)),
            let object = try? JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any],
            let node = object["node"] as? [String: Any], let id = node["id"] as? String,
            let parsed = NodeIdentity(nodeID: id)
        else { return nil }
        var identity = parsed.workload
        if let metadata = node["metadata"] as? [String: Any] {
            if let ns = metadata["NAMESPACE"] as? String { identity.namespace = ns }
            if let workload = metadata["WORKLOAD_NAME"] as? String { identity.workload = workload }
        }
        directory.learn(nodeID: id, identity: identity)
        return MetricNames.proxyLabels(identity, pod: parsed.pod)
    }

    /// The body of a 200 answer to `GET url` (at most 64 MiB), through the shared HTTP client.
    private static func get(_ url: String, accept: String, timeout: TimeAmount) async throws -> ByteBuffer {
        var request = HTTPClientRequest(url: url)
        request.headers.add(name: "Accept", value: accept)
        let response = try await HTTPClient.shared.execute(request, timeout: timeout)
        guard response.status == .ok else { throw ScrapeError(message: "status \(response.status.code)") }
        return try await response.body.collect(upTo: 64 << 20)
    }

    private struct ScrapeError: Error {
        var message: String
    }
}

extension URL {
    var hostAndPort: String {
        (host ?? "") + (port.map { ":\($0)" } ?? "")
    }
}
