import Foundation
import Hummingbird
import Logging
import NIOCore
import SextantModel
import Testing

@testable import SextantServer

/// `--scrape` of an Envoy admin endpoint of our own: its series are stored under the proxy that
/// `/server_info` names.
@Suite struct ScrapeServiceTests {
    @Test func scrapesAnEnvoyAdminAndNamesItsProxy() async throws {
        let admin = Router()
        admin.get("/stats/prometheus") { _, _ in
            "# TYPE envoy_cluster_upstream_rq_total counter\n"
                + "envoy_cluster_upstream_rq_total{envoy_cluster_name=\"outbound|9080||reviews\"} 42\n"
        }
        admin.get("/server_info") { _, _ in
            #"{"node":{"id":"sidecar~10.0.0.7~reviews-v2-7d8f9c6b4d-x2k9p.default~default.svc.cluster.local","#
                + #""metadata":{"NAMESPACE":"default","WORKLOAD_NAME":"reviews-v2"}}}"#
        }
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let server = Application(
            router: admin, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { continuation.yield($0.localAddress?.port ?? 0) }, logger: Logger.quiet)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.runService() }
            var port = 0
            for await bound in ports {
                port = bound
                break
            }
            try await withCollector(configure: { configuration in
                configuration.server.scrapeTargets = ["http://127.0.0.1:\(port)/stats/prometheus"]
                configuration.server.scrapeIntervalSeconds = 0.2
            }) { collector in
                let scraper = try #require(collector.services.first { $0 is ScrapeService })
                let scraping = Task { try await scraper.run() }
                defer { scraping.cancel() }
                var found: [MetricLabelPair]?
                for _ in 0..<100 where found == nil {
                    try await Task.sleep(for: .milliseconds(100))
                    found = try await collector.database.series(named: ["envoy_cluster_upstream_rq_total"]).first?.labels
                }
                let labels = try #require(found)
                #expect(labels.contains(MetricLabelPair("workload", "reviews-v2")))
                #expect(labels.contains(MetricLabelPair("namespace", "default")))
                #expect(labels.contains(MetricLabelPair("pod", "reviews-v2-7d8f9c6b4d-x2k9p")))
                #expect(labels.contains(MetricLabelPair("envoy_cluster_name", "outbound|9080||reviews")))
            }
            group.cancelAll()
        }
    }
}
