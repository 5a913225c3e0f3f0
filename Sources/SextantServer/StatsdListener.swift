import Logging
import NIOCore
import NIOPosix
import SextantIngest
import SextantModel
import ServiceLifecycle
import Synchronization

/// The statsd receiver (UDP). Datagrams are decoded as they arrive and merged per series — counter
/// increases added, gauges and timers folded — then written once a second, so a busy proxy costs
/// one row per series per second, not one per datagram. Malformed lines are counted and skipped.
final class StatsdListener: Service, Sendable {
    private struct Pending {
        var points: [String: MetricPoint] = [:]
        var malformed = 0
        /// New series past what one flush may hold (`--max-records-per-request`).
        var overflow = 0
    }

    private let host: String
    private let port: Int
    private let sink: IngestSink
    private let directory: ProxyDirectory
    private let metrics: SelfMetrics
    private let logger: Logger
    private let onListening: @Sendable (String) -> Void
    private let pending = Mutex(Pending())
    private let decoder = StatsdDecoder()

    init(
        host: String, port: Int, sink: IngestSink, directory: ProxyDirectory, metrics: SelfMetrics, logger: Logger,
        onListening: @escaping @Sendable (String) -> Void
    ) {
        self.host = host
        self.port = port
        self.sink = sink
        self.directory = directory
        self.metrics = metrics
        self.logger = logger
        self.onListening = onListening
    }

    func run() async throws {
        let channel = try await DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            // Envoy sends a whole flush (hundreds of datagrams) at once: room for the burst.
            .channelOption(.socketOption(.so_rcvbuf), value: 8 << 20)
            .channelOption(.maxMessagesPerRead, value: 64)
            .bind(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<AddressedEnvelope<ByteBuffer>, AddressedEnvelope<ByteBuffer>>(
                        wrappingChannelSynchronously: channel)
                }
            }
        onListening("\(channel.channel.localAddress?.description ?? "")")
        try await withGracefulShutdownHandler {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    try await channel.executeThenClose { inbound, _ in
                        for try await envelope in inbound { self.receive(envelope) }
                    }
                }
                group.addTask {
                    while !Task.isCancelled {
                        try await Task.sleep(for: .seconds(1))
                        await self.flush()
                    }
                }
                try await group.next()
                group.cancelAll()
            }
        } onGracefulShutdown: {
            channel.channel.close(promise: nil)
        }
        await flush()
    }

    private func receive(_ envelope: AddressedEnvelope<ByteBuffer>) {
        let ip = envelope.remoteAddress.ipAddress ?? "unknown"
        let batch = decoder.decode(
            datagram: Array(buffer: envelope.data), sender: directory.labels(forIP: ip), timestampMs: sink.clock.nowMillis)
        pending.withLock { pending in
            pending.malformed += batch.rejected.count
            for point in batch.metrics {
                let key = point.name + "\u{1}" + point.labels.map { "\($0.name)=\($0.value)" }.joined(separator: "\u{1}")
                if var existing = pending.points[key] {
                    if point.temporality == .delta {
                        existing.value += point.value
                        existing.timestampMs = point.timestampMs
                        pending.points[key] = existing
                    } else {
                        pending.points[key] = point
                    }
                } else if pending.points.count < sink.limits.maxRecordsPerRequest {
                    pending.points[key] = point
                } else {
                    pending.overflow += 1
                }
            }
        }
        if !batch.rejected.isEmpty {
            logger.debug("malformed statsd lines", metadata: ["ingest.first": "\(batch.rejected[0])"])
        }
    }

    private func flush() async {
        let taken = pending.withLock { pending -> Pending in
            let taken = pending
            pending = Pending()
            return taken
        }
        metrics.count("sextant_statsd_malformed_lines_total", [], taken.malformed)
        metrics.count(
            "sextant_ingest_rejected_records_total",
            [("channel", "statsd"), ("reason", RecordError.Reason.tooManyRecords.rawValue)], taken.overflow)
        guard !taken.points.isEmpty else { return }
        do {
            try await sink.store(IngestBatch(metrics: Array(taken.points.values)), channel: "statsd")
        } catch {
            sink.count(error, channel: "statsd")
            logger.warning("statsd points not stored", metadata: ["error": "\(error)", "ingest.points": "\(taken.points.count)"])
        }
    }
}
