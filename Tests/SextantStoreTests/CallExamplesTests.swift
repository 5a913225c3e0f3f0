import Foundation
import GRDB
import Logging
import SextantModel
@testable import SextantStore
import Testing

@Suite struct CallExamplesTests {
    private struct Edge: Hashable {
        var reporter: Reporter
        var proxy: String
        var peer: String?
        var service: String
    }

    private func edge(_ e: CallExample) -> Edge {
        Edge(reporter: e.reporter, proxy: e.proxy.workload, peer: e.peer?.workload, service: e.service.host)
    }

    /// The examples kept as calls are written are those a scan of the stored calls finds: per
    /// edge, the slowest traced call's duration and the newest failed call.
    @Test func examplesKeptOnWriteAgreeWithAScanOfTheCalls() async throws {
        try await withTemporaryDatabase { database, _ in
            for batch in try zipkinFixtureBatches() + accessLogFixtureBatches() { _ = try await database.write([batch]) }
            let kept = try await database.callExamples(fromMicros: 0, toMicros: .max)
            let scanned = try await database.pool.read { db in
                let dictionaries = try Dictionaries(db)
                // Per edge (reporter, proxy, peer, service, protocol): the slowest traced call, and
                // the newest failed one.
                struct Key: Hashable { var reporter: Int, proxy: Int64, peer: Int64, service: Int64, proto: Int }
                var slowest: [Key: OpenCall] = [:]
                var failed: [Key: OpenCall] = [:]
                try SextantDatabase.storedCalls(db, fromMicros: .min, toMicros: .max) { call in
                    let f = call.sample.facts
                    guard call.traceID != nil, f.requestProtocol != RequestProtocol.tcp.rawValue else { return }
                    let key = Key(reporter: f.reporter, proxy: f.proxyID, peer: f.peerID, service: f.serviceID, proto: f.requestProtocol)
                    if call.sample.durationMicros > slowest[key]?.sample.durationMicros ?? -1 { slowest[key] = call }
                    let isError = CallOutcome.isError(
                        responseCode: f.responseCode, grpcStatus: f.grpcStatus < 0 ? nil : f.grpcStatus,
                        requestProtocol: RequestProtocol(rawValue: f.requestProtocol) ?? .http)
                    if isError, call.sample.startMicros > failed[key]?.sample.startMicros ?? .min { failed[key] = call }
                }
                func example(_ call: OpenCall, isError: Bool) -> CallExample {
                    let f = call.sample.facts
                    return CallExample(
                        reporter: call.reporter, proxy: dictionaries.workload(f.proxyID),
                        peer: f.peerID == 0 ? nil : dictionaries.workload(f.peerID), service: dictionaries.service(f.serviceID),
                        requestProtocol: RequestProtocol(rawValue: f.requestProtocol) ?? .http,
                        traceID: call.traceID?.hex ?? "", durationMicros: call.sample.durationMicros, isError: isError)
                }
                return (
                    slowest: slowest.values.map { example($0, isError: false) },
                    failed: failed.values.map { example($0, isError: true) }
                )
            }
            #expect(!scanned.slowest.isEmpty && !scanned.failed.isEmpty)
            // Written one batch at a time, many calls waited for their other side in a later
            // commit: noted first with an unknown peer, those notes stay there. Every edge whose
            // peer is known has exactly the scan's examples.
            let keptSlowest = Dictionary(uniqueKeysWithValues: kept.filter { !$0.isError }.map { (edge($0), $0.durationMicros) })
            let scanSlowest = Dictionary(uniqueKeysWithValues: scanned.slowest.map { (edge($0), $0.durationMicros) })
            #expect(keptSlowest.filter { $0.key.peer != nil } == scanSlowest.filter { $0.key.peer != nil })
            #expect(scanSlowest.allSatisfy { edge, micros in (keptSlowest[edge] ?? -1) >= micros })
            #expect(Set(keptSlowest.keys).subtracting(scanSlowest.keys).allSatisfy { $0.peer == nil })
            let keptFailed = Dictionary(uniqueKeysWithValues: kept.filter(\.isError).map { (edge($0), $0.traceID) })
            let scanFailed = Dictionary(uniqueKeysWithValues: scanned.failed.map { (edge($0), $0.traceID) })
            #expect(keptFailed.filter { $0.key.peer != nil } == scanFailed.filter { $0.key.peer != nil })
            #expect(Set(keptFailed.keys).subtracting(scanFailed.keys).allSatisfy { $0.peer == nil })
            #expect(keptFailed.values.contains("518ef18540f2f4801d7747afb5ff656f"))
        }
    }

    /// Examples are per minute: a window reads the minutes it overlaps, and retention takes them
    /// with the raw records their traces are in.
    @Test func aWindowReadsItsMinutesAndRetentionTakesThemWithTheRawRecords() async throws {
        try await withTemporaryDatabase { database, _ in
            let now: Int64 = 1_795_700_400
            let proxy = WorkloadIdentity(namespace: "shop", workload: "web-v1", app: "web", version: "v1")
            let service = ServiceRef(host: "api.shop.svc.cluster.local", name: "api", namespace: "shop")
            func call(_ start: Int64, trace: UInt64, millis: Int64, code: Int) -> CallReport {
                CallReport(
                    reporter: .source, proxy: proxy, service: service, startMicros: start * 1_000_000,
                    durationMicros: millis * 1000, responseCode: code, traceID: TraceID(high: 1, low: trace),
                    spanID: SpanID(trace), channel: .spans)
            }
            _ = try await database.write([
                IngestBatch(requests: [
                    call(now - 7200, trace: 1, millis: 900, code: 503),
                    call(now - 30, trace: 2, millis: 10, code: 200),
                    call(now - 20, trace: 3, millis: 40, code: 500),
                    call(now - 10, trace: 4, millis: 20, code: 404),
                ])
            ])
            func examples(from: Int64, to: Int64) async throws -> [String] {
                try await database.callExamples(fromMicros: from * 1_000_000, toMicros: to * 1_000_000)
                    .sorted { !$0.isError && $1.isError }.map { "\($0.isError ? "failed" : "slowest") \($0.traceID.suffix(1))" }
            }
            #expect(try await examples(from: now - 60, to: now) == ["slowest 3", "failed 4"])
            #expect(try await examples(from: now - 7200, to: now - 7199) == ["slowest 1", "failed 1"])
            var config = RetentionService.Configuration()
            config.rawSeconds = 3600
            try await RetentionService(database: database, configuration: config, logger: Logger.quiet, now: { now })
                .enforce()
            #expect(try await examples(from: now - 7200, to: now - 7199).isEmpty)
            #expect(try await examples(from: now - 60, to: now) == ["slowest 3", "failed 4"])
        }
    }
}
