import Foundation
import Logging
import SextantModel
@testable import SextantStore
import Testing

private let caller = WorkloadIdentity(namespace: "shop", workload: "web-v1", app: "web", version: "v1")
private let callee = WorkloadIdentity(namespace: "shop", workload: "api-v1", app: "api", version: "v1")
private let apiService = ServiceRef(host: "api.shop.svc.cluster.local", name: "api", namespace: "shop")

/// A call web → api as the source proxy reports it, already knowing its peer.
private func call(at micros: Int64, durationMicros: Int64, code: Int = 200, id: Int) -> CallReport {
    CallReport(
        reporter: .source, proxy: caller, peer: callee, service: apiService, startMicros: micros,
        durationMicros: durationMicros, responseCode: code, requestID: "r\(id)", channel: .accessLog)
}

/// Deterministic generator so runs are comparable.
private struct Generator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return state
    }
}

private func percentile(_ sorted: [Int64], _ q: Double) -> Double {
    Double(sorted[Int((q * Double(sorted.count - 1)).rounded(.down))])
}

/// What PromQL's histogram_quantile would answer from Envoy's default buckets.
private func classicQuantile(_ sorted: [Int64], _ q: Double) -> Double {
    let bounds = IstioHistogram.bounds
    var cumulative = [Int](repeating: 0, count: bounds.count)
    for v in sorted {
        let ms = Double(v) / 1000
        for (i, b) in bounds.enumerated() where ms <= b { cumulative[i] += 1 }
    }
    let rank = q * Double(sorted.count)
    guard let i = cumulative.firstIndex(where: { Double($0) >= rank }) else { return bounds.last! * 1000 }
    let lower = i == 0 ? 0 : bounds[i - 1]
    let below = i == 0 ? 0 : Double(cumulative[i - 1])
    let inBucket = Double(cumulative[i]) - below
    return (lower + (bounds[i] - lower) * (rank - below) / max(inBucket, 1)) * 1000
}

@Suite struct RollupTests {
    @Test func splitsWindowsIntoHoursMinutesAndRawEdges() {
        let plan = TierPlan(fromMicros: 3_590_500_000, toMicros: 7_330_000_000)
        #expect(plan.rollups.map(\.0) == [3600, 60])
        #expect(plan.rollups.map(\.1) == [3600..<7200, 7200..<7320])
        let both = TierPlan(fromMicros: 3_530_500_000, toMicros: 7_330_000_000)
        #expect(both.rollups.map(\.0) == [3600, 60, 60])
        #expect(both.rollups.map(\.1) == [3600..<7200, 3540..<3600, 7200..<7320])
        #expect(plan.raw == [3_590_500_000..<3_600_000_000, 7_320_000_000..<7_330_000_000])
        #expect(TierPlan(fromMicros: 10_000_000, toMicros: 50_000_000).raw == [10_000_000..<50_000_000])
        // Days in the middle, then hours, 10 minutes and minutes towards the edges.
        let long = TierPlan(fromMicros: 168_800_500_000, toMicros: 260_400_000_000)
        #expect(long.rollups.map(\.0) == [86_400, 3600, 300, 60, 600])
        #expect(
            long.rollups.map(\.1) == [
                172_800..<259_200, 169_200..<172_800, 168_900..<169_200, 168_840..<168_900, 259_200..<260_400,
            ])
        #expect(long.raw == [168_800_500_000..<168_840_000_000])
    }

    @Test(arguments: ["uniform", "lognormal", "bimodal"])
    func percentilesStayWithinOnePercentInsideAndAcrossTiers(distribution: String) async throws {
        try await withTemporaryDatabase { database, _ in
            var rng = Generator(state: 42)
            let start: Int64 = 1_795_700_000 * 1_000_000 - 1_795_700_000 % 3600 * 1_000_000  // an hour boundary
            var durations: [(Int64, Int64)] = []
            for i in 0..<6000 {
                let u = Double.random(in: 0..<1, using: &rng)
                let micros: Int64
                switch distribution {
                case "uniform": micros = Int64(1000 + u * 400_000)
                case "lognormal":
                    let u2 = Double.random(in: 0.0001..<1, using: &rng)
                    let normal = sqrt(-2 * log(u2)) * cos(2 * .pi * u)
                    micros = Int64(exp(9.5 + 0.8 * normal))
                default: micros = u < 0.99 ? Int64(5000 + u * 20_000) : Int64(2_000_000 + u * 1_000_000)
                }
                // Spread over 2.5 hours so windows cross hour, minute and raw boundaries.
                durations.append((start + Int64(i) * 1_500_000 + 123_456, micros))
            }
            let requests = durations.enumerated().map { i, d in call(at: d.0, durationMicros: d.1, id: i) }
            _ = try await database.write([IngestBatch(requests: requests)])
            let windows: [(String, Int64, Int64)] = [
                ("inside one minute tier", start + 60_000_000, start + 1800 * 1_000_000),
                ("hours, minutes and raw edges", start + 30_500_000, start + 9000 * 1_000_000 - 7_000_000),
            ]
            for (name, from, to) in windows {
                let exact = durations.filter { $0.0 >= from && $0.0 < to }.map(\.1).sorted()
                var sketch = LatencySketch()
                for a in try await database.callAggregates(fromMicros: from, toMicros: to) {
                    sketch.merge(a.latency)
                }
                #expect(sketch.count == exact.count, "\(name)")
                var report: [String] = []
                for q in [0.5, 0.9, 0.95, 0.99] {
                    let truth = percentile(exact, q)
                    let estimate = try #require(sketch.quantile(q))
                    let error = abs(estimate - truth) / truth
                    let classic = classicQuantile(exact, q)
                    report.append(
                        String(format: "p%.0f exact %.1fms sketch %.1fms (%.2f%%) classic %.1fms (%.1f%%)", q * 100,
                            truth / 1000, estimate / 1000, error * 100, classic / 1000, abs(classic - truth) / truth * 100))
                    #expect(error <= 0.0101, "\(distribution) \(name) p\(q): \(estimate) vs \(truth)")
                }
                print("[\(distribution), \(name)] " + report.joined(separator: "; "))
            }
        }
    }

    @Test func rollupsAgreeWithRawCallsAfterPairingMovesThem() async throws {
        try await withTemporaryDatabase { database, _ in
            let t: Int64 = 1_795_700_000_000_000
            // Outbound reports first, unpaired; the inbound reports pair them in a later write.
            let outbound = (0..<50).map { i in
                CallReport(
                    reporter: .source, proxy: caller, service: apiService, startMicros: t + Int64(i) * 7_000_000,
                    durationMicros: 3000, responseCode: i % 10 == 0 ? 503 : 200, requestID: "x\(i)", channel: .accessLog)
            }
            let inbound = outbound.map { o in
                CallReport(
                    reporter: .destination, proxy: callee, service: apiService, startMicros: o.startMicros + 500,
                    durationMicros: 2000, responseCode: o.responseCode, requestID: o.requestID, channel: .accessLog)
            }
            _ = try await database.write([IngestBatch(requests: outbound)])
            let summary = try await database.write([IngestBatch(requests: inbound)])
            #expect(summary.requestsPaired == 50)
            let rollup = try await database.callAggregates(fromMicros: t - 3_600_000_000, toMicros: t + 7_200_000_000)
            let raw = try await database.rawCallAggregates(fromMicros: 0, toMicros: .max)
            func edges(_ a: [CallAggregate]) -> [String: Int] {
                var out: [String: Int] = [:]
                for x in a where x.isCounted {
                    out["\(x.sourceWorkload.workload)->\(x.destinationWorkload?.workload ?? "?"):\(x.responseCode)", default: 0] += x.count
                }
                return out
            }
            #expect(edges(rollup) == ["web-v1->api-v1:200": 45, "web-v1->api-v1:503": 5])
            #expect(edges(rollup) == edges(raw))
            let totals = try await database.istioTotals(atMicros: .max).requests
            #expect(totals.filter { $0.reporter == .destination }.map(\.source.workload) .allSatisfy { $0 == "web-v1" })
            #expect(totals.reduce(0) { $0 + $1.count } == 100)
        }
    }

    @Test func tcpConnectionsRollUpAndOutliveTheirRawRows() async throws {
        try await withTemporaryDatabase { database, _ in
            let t: Int64 = 1_795_700_000_000_000
            let mongo = ServiceRef(host: "mongodb.shop.svc.cluster.local", name: "mongodb", namespace: "shop")
            // 120 connections over two hours; both proxies report each, the caller first.
            var outbound: [TCPConnection] = []
            var inbound: [TCPConnection] = []
            for i in 0..<120 {
                let start = t + Int64(i) * 61_000_000
                let callerAddress = "10.0.0.1:\(40000 + i)"
                outbound.append(
                    TCPConnection(
                        reporter: .source, proxy: caller, service: mongo, startMicros: start,
                        durationMicros: 20_000 + Int64(i) * 1000, receivedBytes: 100, sentBytes: 2000,
                        localAddress: callerAddress, remoteAddress: "10.0.0.2:27017", channel: .als))
                inbound.append(
                    TCPConnection(
                        reporter: .destination, proxy: callee, service: mongo, startMicros: start + 300,
                        durationMicros: 19_000 + Int64(i) * 1000, receivedBytes: 100, sentBytes: 2000,
                        localAddress: "10.0.0.2:27017", remoteAddress: callerAddress, channel: .als))
            }
            _ = try await database.write([IngestBatch(connections: outbound)])
            let summary = try await database.write([IngestBatch(connections: inbound)])
            #expect(summary.connectionsPaired == 120)
            func edges(_ a: [CallAggregate]) -> [String: [Int64]] {
                var out: [String: [Int64]] = [:]
                for x in a {
                    let key = "\(x.reporter) \(x.sourceWorkload.workload)->\(x.destinationWorkload?.workload ?? "?")"
                    let sums = out[key, default: [0, 0, 0, 0]]
                    out[key] = [sums[0] + Int64(x.count), sums[1] + x.requestBytes, sums[2] + x.responseBytes,
                        sums[3] + x.durationMicrosSum]
                }
                return out
            }
            // A window with raw edges, minutes, 10 minutes and an hour equals the raw rows.
            let from = t + 30_500_000
            let to = t + 7_000_000_000
            let tiered = try await database.connectionAggregates(fromMicros: from, toMicros: to)
            let raw = try await database.rawConnectionAggregates(fromMicros: from, toMicros: to)
            #expect(edges(tiered) == edges(raw))
            #expect(edges(tiered)["source web-v1->api-v1"]?[0] == 114)
            var sketch = LatencySketch()
            for a in tiered where a.reporter == .destination { sketch.merge(a.latency) }
            #expect(sketch.count == 114)
            // Once the raw rows are gone the rollups still answer whole minutes, and the totals hold.
            try await database.pool.write { try $0.execute(sql: "DELETE FROM tcp_connections") }
            let later = try await database.connectionAggregates(fromMicros: t - 80_000_000, toMicros: t + 7_300_000_000)
            #expect(edges(later)["source web-v1->api-v1"] == [120, 12_000, 240_000, 120 * 20_000 + 1000 * 7140])
            let totals = try await database.istioTotals(atMicros: .max).connections
            #expect(totals.map(\.connections).sorted() == [120, 120])
            #expect(totals.allSatisfy { $0.source.workload == "web-v1" && $0.destination.workload == "api-v1" })
        }
    }

    @Test func retentionKeepsTheFileFromGrowingAndTheRestAnswering() async throws {
        try await withTemporaryDatabase { database, folder in
            var config = RetentionService.Configuration()
            config.rawSeconds = 3600
            config.minuteSeconds = 24 * 3600
            config.hourSeconds = 3 * 24 * 3600
            let clock = SimulatedClock(seconds: 1_795_700_400)
            let retention = RetentionService(database: database, configuration: config, logger: Logger.quiet, now: { clock.seconds })
            var sizes: [Int] = []
            var id = 0
            // A week at a constant rate: 30 calls every 10 minutes, retention every simulated hour.
            for step in 0..<(7 * 24 * 6) {
                let base = (clock.seconds) * 1_000_000
                let requests = (0..<30).map { i -> CallReport in
                    id += 1
                    return call(at: base + Int64(i) * 10_000_000, durationMicros: 1000 + Int64(i) * 100, id: id)
                }
                _ = try await database.write([IngestBatch(requests: requests)])
                clock.advance(600)
                if step % 6 == 5 {
                    try await retention.enforce()
                    try await database.pool.writeWithoutTransaction { try $0.checkpoint(.truncate) }
                    if step % 144 == 143 { sizes.append(try Self.fileSize(folder)) }
                }
            }
            print("database size at the end of each simulated day: \(sizes)")
            // Day 4 onwards every horizon is reached: the file size stays flat.
            #expect(sizes[6] <= sizes[3] + sizes[3] / 10)
            let now = clock.seconds
            let raw = try await database.rawCallAggregates(fromMicros: 0, toMicros: .max).reduce(0) { $0 + $1.count }
            #expect(raw <= 30 * 7)  // one hour of raw calls (plus the batch at the boundary)
            // The last day is still answered from minute rollups, exactly.
            let day = try await database.callAggregates(fromMicros: (now - 86_400) * 1_000_000, toMicros: now * 1_000_000)
                .reduce(0) { $0 + $1.count }
            #expect(day == 24 * 6 * 30)
            // Older than the hourly horizon is gone.
            let old = try await database.callAggregates(
                fromMicros: (now - 7 * 86_400) * 1_000_000, toMicros: (now - 4 * 86_400) * 1_000_000)
            #expect(old.isEmpty)
        }
    }

    static func fileSize(_ folder: String) throws -> Int {
        let path = (folder as NSString).appendingPathComponent("sextant.db")
        return (try FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.intValue ?? 0
    }
}

/// A clock the test moves by hand.
final class SimulatedClock: @unchecked Sendable {
    // Only the test's own task reads and moves it, one step at a time.
    private(set) var seconds: Int64

    init(seconds: Int64) {
        self.seconds = seconds
    }

    func advance(_ by: Int64) {
        seconds += by
    }
}
