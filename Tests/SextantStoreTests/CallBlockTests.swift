import Foundation
import GRDB
import SextantModel
@testable import SextantStore
import Testing

@Suite struct CallBlockTests {
    private func call(_ row: Int64, startMicros: Int64, reporter: Reporter = .source, traced: Bool = true) -> OpenCall {
        OpenCall(
            rowID: row, key: Int64(bitPattern: 0x9E37_79B9_7F4A_7C15 &* UInt64(row)),
            sample: CallSample(
                facts: CallFacts(
                    reporter: reporter.rawValue, proxyID: 3, peerID: row % 2 == 0 ? 0 : 4, serviceID: 7,
                    requestProtocol: 1, responseCode: row % 3 == 0 ? 503 : 200, grpcStatus: row % 3 == 0 ? 14 : -1,
                    responseFlags: row % 3 == 0 ? "UH" : "-", securityPolicy: "mutual_tls", paired: row % 2 == 1),
                startMicros: startMicros, durationMicros: 1000 + row * 37,
                latencyBucket: LatencySketch.index(micros: 1000 + row * 37), requestBytes: row, responseBytes: 2 * row,
                sources: 1 | Int(row % 4)),
            requestID: row % 5 == 0 ? nil : UInt64(row) &* 0xC2B2_AE3D_27D4_EB4F,
            localAddress: row % 2 == 0 ? 11 : nil, remoteAddress: row % 3 == 0 ? 12 : nil,
            traceID: traced ? TraceID(high: UInt64(row), low: ~UInt64(row)) : nil,
            spanID: traced ? SpanID(UInt64(row) + 100) : nil, parentSpanID: traced && row % 2 == 0 ? SpanID(UInt64(row)) : nil)
    }

    /// Every field of every call comes back as written, in order, with its revision mark (ids
    /// going backwards, starts before the block's first, optional fields present and absent, keys
    /// derived and stored).
    @Test func aBlockGivesBackEveryCallAsWritten() throws {
        let entries = (0..<300).map { (i: Int64) -> CallBlock.Entry in
            var c = call(
                i % 7 == 0 ? 5 + i / 7 : 1000 + Int64(i), startMicros: 1_795_000_000_000_000 - Int64(i % 13) * 1_000_000,
                traced: i % 4 != 0)
            // Most keys are the ones the calls' fields give, and are not stored.
            if i % 3 != 0 { c.key = CallKey.derived(c) }
            return CallBlock.Entry(call: c, isRevision: i % 7 == 0)
        }
        var decoded: [CallBlock.Entry] = []
        let data = CallBlock.encode(entries)
        try CallBlock.decode(data) { decoded.append($0) }
        #expect(decoded == entries)
        // A call takes far fewer bytes than a row did.
        #expect(data.count / entries.count < 80)
        #expect(throws: (any Error).self) { try CallBlock.decode(Array(data.dropLast(3))) { _ in } }
    }

    /// A call paired in a later commit is written again in that commit's block; readers see it
    /// once, as it is now.
    @Test func readersTakeEachCallFromTheNewestBlockHoldingIt() async throws {
        try await withTemporaryDatabase { database, _ in
            let t = Int64(Date().timeIntervalSince1970) * 1_000_000 - 30_000_000
            let outbound = (0..<20).map { i in ShopMesh.call(.source, at: t + Int64(i) * 1000, requestID: "x\(i)") }
            // Half the inbound sides arrive in a later commit.
            let inbound = outbound.prefix(10).map { o in
                ShopMesh.call(.destination, at: o.startMicros + 500, durationMicros: 2000, requestID: o.requestID!)
            }
            _ = try await database.write([IngestBatch(requests: outbound)])
            let summary = try await database.write([IngestBatch(requests: inbound)])
            #expect(summary.requestsPaired == 10)
            let blocks = try await database.pool.read {
                try Row.fetchAll($0, sql: "SELECT entry_count, call_count FROM call_blocks ORDER BY id").map { [$0[0], $0[1]] as [Int] }
            }
            #expect(blocks == [[20, 20], [20, 10]])
            let calls = try await database.everyCall()
            #expect(calls.count == 30)
            #expect(calls.filter(\.paired).count == 20)
            #expect(try await database.rowCounts().requests == 30)
            let aggregates = try await database.rawCallAggregates(fromMicros: t, toMicros: t + 1_000_000)
            #expect(aggregates.reduce(0) { $0 + $1.count } == 30)
            #expect(aggregates.filter(\.paired).reduce(0) { $0 + $1.count } == 20)
            // A resend changes nothing, and writes no new version.
            _ = try await database.write([IngestBatch(requests: inbound)])
            #expect(try await database.pool.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM call_blocks") } == 2)
        }
    }
}
