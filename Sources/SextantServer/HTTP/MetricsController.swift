import Foundation
import Hummingbird
import NIOCore
import SextantModel
import SextantStore

/// `/metrics` (Sextant's own metrics and Istio's standard metrics) and `/federate`.
struct MetricsController: Sendable {
    let database: SextantDatabase
    let writer: IngestWriter
    let metrics: SelfMetrics
    let memory: MemoryGuard

    func addRoutes(to group: RouterGroup<some RequestContext>) {
        group.get("/metrics", use: metrics)
        group.get("/federate", use: federate)
    }

    private static let help: [String: String] = [
        "sextant_received_records_total": "Records received per channel, by whether they were accepted.",
        "sextant_ingest_refused_total":
            "Requests refused because Sextant could not take them now (queue full, memory, storage full, read-only).",
        "sextant_ingest_rejected_requests_total":
            "Requests rejected whole: malformed, unsupported content type, too large, too many records.",
        "sextant_ingest_rejected_records_total": "Records rejected on their own while the rest of their request was kept.",
        "sextant_ingest_truncated_strings_total": "Strings shortened to --max-string-bytes in records that were kept.",
        "sextant_ingest_dropped_attributes_total":
            "Attributes and span events dropped past --max-attributes-per-record in records that were kept.",
        "sextant_stored_spans_total": "Spans committed (duplicates excluded).",
        "sextant_stored_calls_total": "Calls committed as new rows.",
        "sextant_merged_calls_total": "Call reports merged into a call already stored for the same proxy.",
        "sextant_paired_calls_total": "Calls matched with the other proxy's report of them.",
        "sextant_ingest_commits_total": "Write transactions committed by the ingest writer.",
        "sextant_ingest_writer_busy_seconds_total":
            "Seconds the ingest writer spent inside write transactions, commit included (failed ones too).",
        "sextant_ingest_commit_records": "Records per committed write transaction of the ingest writer.",
        "sextant_ingest_queue_records": "Records waiting for a commit.",
        "sextant_ingest_queue_bytes": "Estimated bytes of prepared records waiting for a commit.",
        "sextant_ingest_latency_seconds": "Seconds from a request's records being queued to their commit, per channel.",
    ]

    func metrics(_ request: Request, _ context: some RequestContext) async throws -> Response {
        let format = ExpositionFormat.negotiate(accept: request.headers[.accept])
        let bytes = try await exposition(format: format)
        return Response(
            status: .ok, headers: [.contentType: format.contentType],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    func federate(_ request: Request, _ context: some RequestContext) async throws -> Response {
        // Prometheus percent-encodes the brackets of the parameter name (`match%5B%5D`).
        let selectors = try SeriesController.selectors(request, parameter: "match[]", required: true)
        let now = database.clock.nowMillis
        let bytes = Federation.renderBytes(
            try await ownFamilies(), istio: try await database.istioTotals(), ingested: database.metricHead.view(),
            sinceMs: now - Self.ingestedLookbackMs, selectors: selectors, now: now)
        return Response(
            status: .ok, headers: [.contentType: ExpositionFormat.text004.contentType],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    /// Ingested series are exposed while their newest sample is this recent (Prometheus's lookback).
    static let ingestedLookbackMs: Int64 = 5 * 60 * 1000

    /// `/metrics`: Sextant's own families and the ingested series (newest sample each), then
    /// Istio's, written straight from their totals.
    private func exposition(format: ExpositionFormat) async throws -> [UInt8] {
        let sinceMs = database.clock.nowMillis - Self.ingestedLookbackMs
        let totals = try await database.istioTotals()
        var ingested = Self.families(database.metricHead.view(), sinceMs: sinceMs)
        var out: [UInt8] = []
        let remoteIstio = Dictionary(
            ingested.filter { IstioMetrics.names.contains($0.name) }.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        ingested.removeAll { IstioMetrics.names.contains($0.name) }
        ExpositionEncoder.appendFamilies(try await ownFamilies() + ingested, format: format, to: &out)
        IstioExposition.append(totals, merging: remoteIstio, format: format, to: &out)
        if format == .openMetrics { out.append(contentsOf: "# EOF\n".utf8) }
        return out
    }

    /// Sextant's own families, the exact latency quantiles among them.
    private func ownFamilies() async throws -> [MetricFamily] {
        let stats = writer.statistics
        var own = metrics.families(help: Self.help)
        own.append(contentsOf: [
            MetricFamily(
                name: "sextant_stored_spans_total", help: Self.help["sextant_stored_spans_total"], type: .counter,
                samples: [MetricSample(name: "sextant_stored_spans_total", value: Double(stats.totals.spansStored))]),
            MetricFamily(
                name: "sextant_stored_calls_total", help: Self.help["sextant_stored_calls_total"], type: .counter,
                samples: [MetricSample(name: "sextant_stored_calls_total", value: Double(stats.totals.requestsStored))]),
            MetricFamily(
                name: "sextant_merged_calls_total", help: Self.help["sextant_merged_calls_total"], type: .counter,
                samples: [MetricSample(name: "sextant_merged_calls_total", value: Double(stats.totals.requestsMerged))]),
            MetricFamily(
                name: "sextant_paired_calls_total", help: Self.help["sextant_paired_calls_total"], type: .counter,
                samples: [MetricSample(name: "sextant_paired_calls_total", value: Double(stats.totals.requestsPaired))]),
            MetricFamily(
                name: "sextant_metric_points_dropped_total",
                help: "Metric points refused because their metric already has --max-series-per-metric series, or not a number.",
                type: .counter,
                samples: [MetricSample(name: "sextant_metric_points_dropped_total", value: Double(stats.totals.metricsDropped))]),
        ])
        own.append(contentsOf: Self.writerFamilies(stats))
        var windows: [(label: String, aggregates: [CallAggregate])] = []
        for range in LatencyQuantiles.ranges(nowMicros: database.clock.nowMicros) {
            windows.append((range.label, try await database.callAggregates(fromMicros: range.from, toMicros: range.to)))
        }
        own.append(LatencyQuantiles.family(windows: windows))
        own.append(contentsOf: [
            MetricFamily(
                name: "sextant_resident_memory_bytes",
                help: "Resident memory not backed by files (mapped database pages excluded), as --memory-limit sees it.",
                type: .gauge,
                samples: [MetricSample(name: "sextant_resident_memory_bytes", value: Double(memory.residentBytes.now))]),
            MetricFamily(
                name: "sextant_memory_limit_bytes", help: "The --memory-limit (0: none).", type: .gauge,
                samples: [MetricSample(name: "sextant_memory_limit_bytes", value: Double(memory.limitBytes))]),
            MetricFamily(
                name: "sextant_database_bytes", help: "Size of the database file and its write-ahead log.",
                type: .gauge, samples: [MetricSample(name: "sextant_database_bytes", value: Double(databaseBytes()))]),
        ])
        return own
    }

    /// The ingest writer's own figures: commits, time inside transactions, records per commit, queue.
    static func writerFamilies(_ stats: IngestWriter.Statistics) -> [MetricFamily] {
        var histogram: [MetricSample] = []
        var cumulative = 0
        for (bound, count) in zip(IngestWriter.commitRecordBounds, stats.commitsByRecords) {
            cumulative += count
            histogram.append(
                MetricSample(
                    name: "sextant_ingest_commit_records_bucket",
                    labels: [MetricLabel("le", ExpositionEncoder.formatFloat(Double(bound)))], value: Double(cumulative)))
        }
        histogram.append(
            MetricSample(
                name: "sextant_ingest_commit_records_bucket", labels: [MetricLabel("le", "+Inf")],
                value: Double(stats.commits)))
        histogram.append(MetricSample(name: "sextant_ingest_commit_records_sum", value: Double(stats.committedRecords)))
        histogram.append(MetricSample(name: "sextant_ingest_commit_records_count", value: Double(stats.commits)))
        let busy = stats.busy.components
        return [
            MetricFamily(
                name: "sextant_ingest_commits_total", help: help["sextant_ingest_commits_total"], type: .counter,
                samples: [MetricSample(name: "sextant_ingest_commits_total", value: Double(stats.commits))]),
            MetricFamily(
                name: "sextant_ingest_writer_busy_seconds_total", help: help["sextant_ingest_writer_busy_seconds_total"],
                type: .counter,
                samples: [
                    MetricSample(
                        name: "sextant_ingest_writer_busy_seconds_total",
                        value: Double(busy.seconds) + Double(busy.attoseconds) / 1e18)
                ]),
            MetricFamily(
                name: "sextant_ingest_commit_records", help: help["sextant_ingest_commit_records"], type: .histogram,
                samples: histogram),
            MetricFamily(
                name: "sextant_ingest_queue_records", help: help["sextant_ingest_queue_records"], type: .gauge,
                samples: [MetricSample(name: "sextant_ingest_queue_records", value: Double(stats.queuedRecords))]),
            MetricFamily(
                name: "sextant_ingest_queue_bytes", help: help["sextant_ingest_queue_bytes"], type: .gauge,
                samples: [MetricSample(name: "sextant_ingest_queue_bytes", value: Double(stats.queuedBytes))]),
        ]
    }

    /// Ingested series as families, each with its newest sample and that sample's time: series
    /// whose newest sample is at least `sinceMs`, grouped by family, families by name.
    static func families(_ view: MetricHeadView, sinceMs: Int64) -> [MetricFamily] {
        var byFamily: [String: (MetricPoint.Kind, [MetricSample])] = [:]
        for slot in view.candidates(name: nil, equal: []) {
            guard let latest = view.latest(slot), latest.timeMs >= sinceMs else { continue }
            let kind = view.kind(slot)
            let name = view.name(slot)
            let family = kind == .counter || kind == .gauge || kind == .untyped ? name : view.family(slot)
            let labels = (0..<view.labelCount(slot)).map { position in
                let label = view.label(slot, position)
                return MetricLabel(label.name, label.value)
            }
            byFamily[family, default: (kind, [])].1.append(
                MetricSample(name: name, labels: labels, value: latest.value, timestampMs: latest.timeMs))
        }
        return byFamily.keys.sorted().map { name in
            let (kind, samples) = byFamily[name]!
            let type: MetricType =
                switch kind {
                case .counter: .counter
                case .gauge: .gauge
                case .histogram: .histogram
                case .summary: .summary
                case .untyped: .untyped
                }
            return MetricFamily(name: name, help: "Ingested \(type.rawValue) (newest sample per series).", type: type, samples: samples)
        }
    }

    private func databaseBytes() -> Int64 {
        [database.path, database.path + "-wal"].reduce(0) { total, path in
            let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.int64Value
            return total + (size ?? 0)
        }
    }
}
