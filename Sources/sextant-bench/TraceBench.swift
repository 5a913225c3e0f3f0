import Foundation
import GRDB
import SextantModel
import SextantStore

/// Trace look-ups on a store of `spans` synthetic spans in blocks (`SEXTANT_BENCH=traces`,
/// `SEXTANT_BENCH_SPANS`, default 5,000,000): traces of 6 spans, 20 services, 7 days,
/// log-normal durations with a 10 ms median (1 span in about 4,000 over 1 s), 1 % errors, eight Envoy-like tags each. Written
/// through the store in commits of 2,000 spans, merged by the compactor as a running server's
/// would, then timed through the store's API (what the HTTP handlers call). Prints Markdown.
enum TraceBench {
    static let services = (0..<20).map { String(format: "svc%02d.default", $0) }
    static let end: Int64 = 1_800_000_000_000_000
    static let day: Int64 = 86_400_000_000

    static func run(_ database: SextantDatabase, spans total: Int) async throws {
        var random = SplitMix64(seed: 42)
        let traces = total / 6
        let step = 7 * day / Int64(max(traces, 1))
        var batch: [Span] = []
        var traceIDs: [TraceID] = []
        let fill = ContinuousClock.now
        for t in 0..<traces {
            let trace = TraceID(high: random.next(), low: random.next())
            if t % max(1, traces / 1000) == 0 { traceIDs.append(trace) }
            let start = end - 7 * day + Int64(t) * step
            var parent: SpanID?
            for s in 0..<6 {
                let service = services[Int(random.next() % 20)]
                let duration = Int64(exp(log(10_000.0) + 1.37 * random.normal()))
                let id = SpanID(random.next())
                let error = random.next() % 100 == 0
                var tags: Attributes = [
                    "node_id": "sidecar~10.0.0.\(s)~\(service.prefix(5))-v1-6b746f74dc-9stvs.default~default.svc.cluster.local",
                    "upstream_cluster": "outbound|9080||\(service).svc.cluster.local",
                    "http.url": "http://\(service.prefix(5)):9080/items/\(random.next() % 50)",
                    "http.method": "GET", "component": "proxy", "response_flags": "-",
                    "http.status_code": error ? "503" : "200",
                    "guid:x-request-id": UUID().uuidString.lowercased(),
                ]
                if error { tags["error"] = "true" }
                batch.append(
                    Span(
                        traceID: trace, spanID: id, parentID: parent, kind: s % 2 == 0 ? .client : .server,
                        name: "\(service.prefix(5)):9080/*", startMicros: start + Int64(s) * 100, durationMicros: duration,
                        localEndpoint: .init(serviceName: service, ipv4: "10.0.0.\(s)"), tags: tags))
                parent = id
            }
            if batch.count >= 2000 {
                _ = try await database.write([IngestBatch(spans: batch)])
                batch = []
            }
        }
        _ = try await database.write([IngestBatch(spans: batch)])
        let written = ContinuousClock.now - fill
        let compactStart = ContinuousClock.now
        var merged = 0
        while true {
            let n = try await database.compactSpanBlocks(settledBeforeMicros: .max)
            merged += n
            if n == 0 { break }
        }
        let compacted = ContinuousClock.now - compactStart
        _ = try await database.pool.writeWithoutTransaction { try $0.checkpoint(.truncate) }
        let bytes = try SextantBench.size(database)
        let blocks = try await database.pool.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM span_blocks") ?? 0 }
        print("\(total) spans written in \(written) (\(Int(Double(total) / seconds(written))) spans/s), \(merged) blocks merged in \(compacted) into \(blocks); \(bytes / total) B/span on disk\n")

        func time(_ label: String, target: Double, _ body: () async throws -> Int) async throws {
            for _ in 0..<5 { _ = try await body() }
            var times: [Double] = []
            var found = 0
            for _ in 0..<100 {
                let start = ContinuousClock.now
                found += try await body()
                times.append(SextantBench.milliseconds(ContinuousClock.now - start))
            }
            times.sort()
            let median = times[times.count / 2]
            let p90 = times[times.count * 9 / 10]
            print("| \(label) | \(String(format: "%.2f", median)) | \(String(format: "%.2f", p90)) | \(Int(target)) | \(found / 100) |")
        }
        print("| look-up on \(total / 1_000_000)M spans in blocks | median ms | p90 ms | target ms | results |")
        print("|---|---:|---:|---:|---:|")
        var next = 0
        try await time("trace by id (6 spans)", target: 10) {
            next += 1
            return try await database.spans(traceID: traceIDs[next % traceIDs.count].hex).count
        }
        func search(_ label: String, service: String?, minMillis: Int64, lookback: Int64) async throws {
            try await time(label, target: 20) {
                try await database.traceIDs(
                    matching: TraceQuery(
                        service: service, minDurationMicros: minMillis * 1000, fromMicros: end - lookback, toMicros: end,
                        limit: 10)
                ).count
            }
        }
        try await search("service + minDuration 10 ms, lookback 1 day, limit 10", service: services[3], minMillis: 10, lookback: day)
        try await search("service + minDuration 1 s, lookback 1 h, limit 10", service: services[3], minMillis: 1000, lookback: day / 24)
        try await search("service + minDuration 1 s, lookback 1 day, limit 10", service: services[3], minMillis: 1000, lookback: day)
        try await search("any service + minDuration 1 s, lookback 1 h, limit 10", service: nil, minMillis: 1000, lookback: day / 24)
    }

    static func seconds(_ d: Duration) -> Double { SextantBench.milliseconds(d) / 1000 }
}

extension SplitMix64 {
    /// Uniform in [0, 1).
    mutating func unit() -> Double { Double(next() >> 11) / Double(1 << 53) }
    /// Standard normal (Box–Muller).
    mutating func normal() -> Double { sqrt(-2 * log(max(unit(), 1e-12))) * cos(2 * .pi * unit()) }
}
