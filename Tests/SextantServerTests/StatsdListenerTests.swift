import Foundation
import Logging
import NIOCore
import NIOPosix
import SextantIngest
import SextantModel
import Testing

@testable import SextantServer

/// The statsd receiver on a real UDP socket: datagrams merged per series and written once a second.
@Suite struct StatsdListenerTests {
    @Test func mergesCounterIncreasesAndStoresThem() async throws {
        try await withCollector { collector in
            let metrics = SelfMetrics()
            let sink = IngestSink(
                writer: collector.writer, metrics: metrics, limits: IngestLimits(),
                memory: MemoryGuard(limitBytes: 0, logger: Logger.quiet))
            let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
            let listener = StatsdListener(
                host: "127.0.0.1", port: 0, sink: sink, directory: ProxyDirectory(), metrics: metrics, logger: Logger.quiet
            ) { address in
                continuation.yield(Int(address.split(separator: ":").last ?? "") ?? 0)
            }
            let listening = Task { try await listener.run() }
            defer { listening.cancel() }
            var port = 0
            for await bound in ports {
                port = bound
                break
            }
            let client = try await DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .bind(host: "127.0.0.1", port: 0).get()
            let target = try SocketAddress(ipAddress: "127.0.0.1", port: port)
            for line in ["envoy.cluster.upstream_rq_total:3|c", "envoy.cluster.upstream_rq_total:4|c\nnot a stat", "envoy.server.live:1|g"] {
                try await client.writeAndFlush(AddressedEnvelope(remoteAddress: target, data: ByteBuffer(string: line))).get()
            }
            try await client.close()
            var stored: [String] = []
            for _ in 0..<50 where stored.count < 2 {
                try await Task.sleep(for: .milliseconds(100))
                stored = try await collector.database.series(named: nil).map(\.name).filter { $0.hasPrefix("envoy_") }
            }
            #expect(Set(stored) == ["envoy_cluster_upstream_rq_total", "envoy_server_live"])
            let latest = try await collector.database.latestSamples(sinceMs: 0, names: ["envoy_cluster_upstream_rq_total"])
            #expect(latest.map(\.value) == [7])
            #expect(metrics.families(help: [:]).contains { $0.name == "sextant_statsd_malformed_lines_total" })
        }
    }
}
