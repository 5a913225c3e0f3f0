import Foundation
import GRDB
import Logging
import SextantAnalytics
import SextantModel
import SextantStore

/// Query benchmark for the rollup tiers: fills a database in a temporary folder with a mesh of
/// 500 services and 2,000 edges — rollup rows of every tier a 7-day window reads — then times the graph and signals over 1 h and 7 d, and
/// measures bytes per stored record. Prints Markdown tables.
@main
struct SextantBench {
    static let services = 500
    static let edges = 2000
    static let now: Int64 = 1_795_701_600  // an hour boundary
    /// Timed runs of each query (`SEXTANT_BENCH_REPEATS`, default 15, at least 7), after 3 untimed
    /// ones that open the reader connections and map the file, as a running server has.
    static let repeats = max(7, Int(ProcessInfo.processInfo.environment["SEXTANT_BENCH_REPEATS"] ?? "") ?? 15)

    static func main() async throws {
        // SEXTANT_BENCH_KEEP=1 leaves the filled database behind for a closer look; SEXTANT_BENCH_DB=<folder>
        // queries such a database again without filling it.
        let environment = ProcessInfo.processInfo.environment
        let reuse = environment["SEXTANT_BENCH_DB"]
        let folder = reuse ?? FileManager.default.temporaryDirectory.appendingPathComponent("sextant-bench-\(UUID().uuidString)").path
        let keep = reuse != nil || environment["SEXTANT_BENCH_KEEP"] == "1"
        defer { if keep { print("\nkept \(folder)") } else { try? FileManager.default.removeItem(atPath: folder) } }
        var logger = Logger(label: "bench")
        logger.logLevel = .warning
        var configuration = SextantDatabase.Configuration(directory: folder)
        configuration.synchronousFull = false
        let database = try SextantDatabase(configuration: configuration, logger: logger)
        if environment["SEXTANT_BENCH"] == "traces" {
            try await TraceBench.run(database, spans: Int(environment["SEXTANT_BENCH_SPANS"] ?? "") ?? 5_000_000)
            return
        }
        if reuse == nil {
            let fill = ContinuousClock.now
            try await fillMesh(database)
            // As a running server's automatic checkpoints would leave it: the WAL folded into the file.
            _ = try await database.pool.writeWithoutTransaction { try $0.checkpoint(.truncate) }
            print("filled in \(ContinuousClock.now - fill)\n")
        }
        print("| query (500 services, 2,000 edges) | window | median ms | p90 ms | of which store ms | median CPU ms | target ms | nodes | edges |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
        for (label, seconds, target) in [("1h", Int64(3600), 50.0), ("7d", Int64(7 * 86_400), 200.0)] {
            var times: [Double] = []
            var storeTimes: [Double] = []
            var cpuTimes: [Double] = []
            var graph: ServiceGraph?
            for _ in 0..<3 {
                let aggregates = try await database.callAggregates(
                    fromMicros: (now - seconds) * 1_000_000 + 30_000_000, toMicros: now * 1_000_000 - 20_000_000)
                _ = ServiceGraph(aggregates: aggregates, graphType: .workload, windowSeconds: Double(seconds), endUnixSeconds: Double(now))
            }
            for _ in 0..<repeats {
                let start = ContinuousClock.now
                let cpuStart = processCPUMilliseconds()
                let aggregates = try await database.callAggregates(
                    fromMicros: (now - seconds) * 1_000_000 + 30_000_000, toMicros: now * 1_000_000 - 20_000_000)
                storeTimes.append(milliseconds(ContinuousClock.now - start))
                graph = ServiceGraph(aggregates: aggregates, graphType: .workload, windowSeconds: Double(seconds), endUnixSeconds: Double(now))
                _ = GoldenSignals(aggregates: aggregates, by: .service, windowSeconds: Double(seconds), endUnixSeconds: Double(now))
                times.append(milliseconds(ContinuousClock.now - start))
                cpuTimes.append(processCPUMilliseconds() - cpuStart)
            }
            cpuTimes.sort()
            times.sort()
            storeTimes.sort()
            print(String(format: "| graph + signals | %@ | %.1f | %.1f | %.1f | %.1f | %.0f | %d | %d |", label,
                times[times.count / 2], times[times.count * 9 / 10], storeTimes[storeTimes.count / 2],
                cpuTimes[cpuTimes.count / 2], target, graph?.nodes.count ?? 0, graph?.edges.count ?? 0))
        }
        if reuse == nil { try await bytesPerRecord(logger: logger) }
    }

    /// Identities, then rollup rows straight into the tiers (what seven days of calls would leave).
    static func fillMesh(_ database: SextantDatabase) async throws {
        try await database.pool.write { db in
            for i in 0..<services {
                try db.execute(
                    sql: "INSERT INTO workloads (id, namespace, workload, app, version, canonical_service, canonical_revision, principal, cluster) VALUES (?, ?, ?, ?, 'v1', ?, 'v1', 'unknown', 'Kubernetes')",
                    arguments: [i + 1, "ns\(i % 20)", "svc\(i)-v1", "svc\(i)", "svc\(i)"])
                try db.execute(
                    sql: "INSERT INTO services (id, host, name, namespace) VALUES (?, ?, ?, ?)",
                    arguments: [i + 1, "svc\(i).ns\(i % 20).svc.cluster.local", "svc\(i)", "ns\(i % 20)"])
            }
            // Each service calls four others: 2,000 distinct edges.
            for edge in 0..<edges {
                let a = edge % services
                let b = (a + (edge / services + 1) * 97) % services
                // One series per edge: source-reported, paired, 200.
                try db.execute(
                    sql: "INSERT INTO call_series (id, reporter, proxy_id, peer_id, service_id, protocol, response_code, grpc_status, response_flags, security_policy, paired) VALUES (?, 0, ?, ?, ?, 0, 200, -1, '-', 'unknown', 1)",
                    arguments: [edge + 1, a + 1, b + 1, b + 1])
            }
        }
        // Each tier where a 7-day window and the last day read it: days, 5- and 10-minute buckets for
        // the whole week, hours for eight days, minutes for the last six hours and for six hours
        // around the start of the week.
        let week = Int64(7 * 86_400)
        let fills: [(tier: Int64, ranges: [Range<Int64>])] = [
            (86_400, [(now - week - 2 * 86_400)..<(now + 86_400)]),
            (3600, [(now - week - 86_400)..<now]),
            (600, [(now - week - 3600)..<now]),
            (300, [(now - week - 3600)..<now]),
            (60, [(now - 6 * 3600)..<now, (now - week - 3 * 3600)..<(now - week + 3 * 3600)]),
        ]
        // Four latency buckets per series and bucket, as a few ms of spread gives.
        let indexes = (0..<4).map { 440 + $0 * 7 }
        for (tier, ranges) in fills {
            try await database.pool.write { db in
                let rollup = try db.makeStatement(
                    sql: "INSERT INTO call_rollups (tier, bucket, series_id, count, duration_us, request_bytes, response_bytes, sources, d3, latency) VALUES (?, ?, ?, ?, ?, 0, ?, 2, ?, ?)")
                for range in ranges {
                    var bucket = range.lowerBound - ((range.lowerBound % tier) + tier) % tier
                    while bucket < range.upperBound {
                        let calls = Int(tier / 6)
                        let blob = Data(LatencySketch.encode(Dictionary(uniqueKeysWithValues: indexes.map { ($0, calls / 4) })))
                        for series in 1...edges {
                            try rollup.execute(arguments: [tier, bucket, series, calls, calls * 8000, calls * 300, calls, blob])
                        }
                        bucket += tier
                    }
                }
            }
        }
    }

    /// Bytes per raw span, raw access-log call and edge-minute rollup, by writing each through the store.
    static func bytesPerRecord(logger: Logger) async throws {
        print("\n| record | rows | bytes per row |")
        print("|---|---:|---:|")
        for kind in ["raw span (Zipkin, with its call row)", "raw access-log call", "edge-minute rollup"] {
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sextant-bytes-\(UUID().uuidString)").path
            defer { try? FileManager.default.removeItem(atPath: folder) }
            var configuration = SextantDatabase.Configuration(directory: folder)
            configuration.synchronousFull = false
            let database = try SextantDatabase(configuration: configuration, logger: logger)
            let before = try size(database)
            let rows = 50_000
            let proxy = WorkloadIdentity(namespace: "default", workload: "productpage-v1", app: "productpage", version: "v1")
            let service = ServiceRef(host: "reviews.default.svc.cluster.local", name: "reviews", namespace: "default")
            var batch = IngestBatch()
            for i in 0..<rows {
                let start = now * 1_000_000 + Int64(i) * (kind.hasPrefix("edge") ? 60_000_000 : 1000)
                let id = UInt64(i) &* 0x9E37_79B9_7F4A_7C15
                let call = CallReport(
                    reporter: .source, proxy: proxy, service: service, startMicros: start, durationMicros: 4000 + Int64(i % 300),
                    responseCode: 200, requestBytes: 0, responseBytes: 40, requestID: UUID().uuidString,
                    traceID: kind.hasPrefix("raw span") ? TraceID(high: id, low: id) : nil,
                    spanID: kind.hasPrefix("raw span") ? SpanID(id) : nil,
                    localAddress: "10.0.0.7:5\(i % 10000)", remoteAddress: "10.0.1.9:9080", channel: .accessLog)
                batch.requests.append(call)
                if kind.hasPrefix("raw span") {
                    batch.spans.append(
                        Span(traceID: TraceID(high: id, low: id), spanID: SpanID(id), kind: .client, name: "reviews.default.svc.cluster.local:9080/*",
                            startMicros: start, durationMicros: call.durationMicros,
                            localEndpoint: .init(serviceName: "productpage.default", ipv4: "10.0.0.7"),
                            tags: ["node_id": "sidecar~10.0.0.7~productpage-v1-abc-xyz.default~default.svc.cluster.local",
                                "upstream_cluster": "outbound|9080||reviews.default.svc.cluster.local", "http.status_code": "200",
                                "guid:x-request-id": call.requestID!, "http.url": "http://reviews:9080/reviews/0"]))
                }
                if batch.recordCount >= 5000 {
                    _ = try await database.write([batch])
                    batch = IngestBatch()
                }
            }
            _ = try await database.write([batch])
            if kind.hasPrefix("edge") {
                // Count only the rollups: drop the raw calls and reclaim their pages.
                try await database.pool.write { try $0.execute(sql: "DELETE FROM call_blocks") }
                try await database.pool.writeWithoutTransaction { try $0.execute(sql: "VACUUM") }
            }
            _ = try await database.pool.writeWithoutTransaction { try $0.checkpoint(.truncate) }
            let grown = try size(database) - before
            print("| \(kind) | \(rows) | \(grown / rows) |")
        }
    }

    /// CPU time of the whole process (the queries run on the store's reader threads), which a busy
    /// machine inflates far less than wall time.
    static func processCPUMilliseconds() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t)
        return Double(t.tv_sec) * 1000 + Double(t.tv_nsec) / 1e6
    }

    static func milliseconds(_ d: Duration) -> Double {
        Double(d.components.attoseconds) / 1e15 + Double(d.components.seconds) * 1000
    }

    static func size(_ database: SextantDatabase) throws -> Int {
        try database.pool.read { db in
            (try Int.fetchOne(db, sql: "PRAGMA page_count") ?? 0) * (try Int.fetchOne(db, sql: "PRAGMA page_size") ?? 0)
                - (try Int.fetchOne(db, sql: "PRAGMA freelist_count") ?? 0) * (try Int.fetchOne(db, sql: "PRAGMA page_size") ?? 0)
        }
    }
}
