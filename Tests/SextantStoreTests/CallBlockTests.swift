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
    /// derived and stored), then every relabel.
    @Test func aBlockGivesBackEveryCallAsWritten() throws {
        let calls = (0..<300).map { (i: Int64) -> CallBlock.Entry in
            var c = call(
                i % 7 == 0 ? 5 + i / 7 : 1000 + Int64(i), startMicros: 1_795_000_000_000_000 - Int64(i % 13) * 1_000_000,
                traced: i % 4 != 0)
            // Most keys are the ones the calls' fields give, and are not stored.
            if i % 3 != 0 { c.key = CallKey.derived(c) }
            return .call(c, isRevision: i % 7 == 0)
        }
        let relabels = (0..<40).map { (i: Int64) -> CallBlock.Entry in
            let c = call(900 - i * 3, startMicros: 0)
            return .relabel(rowID: c.rowID, facts: c.sample.facts, sources: c.sample.sources)
        }
        // Calls and relabels may come in any order; a block gives the calls first.
        let entries = zip(calls, relabels).flatMap { [$0, $1] } + calls.dropFirst(relabels.count)
        var decoded: [CallBlock.Entry] = []
        let data = CallBlock.encode(entries)
        try CallBlock.decode(data) { decoded.append($0) }
        #expect(decoded == calls + relabels)
        // A call takes far fewer bytes than a row did.
        #expect(data.count / entries.count < 80)
        #expect(throws: (any Error).self) { try CallBlock.decode(Array(data.dropLast(3))) { _ in } }
    }

    /// Blocks written before relabels existed (version 1: the same columns, none after them)
    /// still read.
    @Test func versionOneBlocksStillRead() throws {
        let calls = (0..<50).map { (i: Int64) -> CallBlock.Entry in .call(call(100 + i, startMicros: 1_795_000_000_000_000), isRevision: false) }
        var body = try BlockFrame.open(CallBlock.encode(calls), version: 2, kind: "call")
        // Version 2 ends with the relabels: a count of none and three empty columns.
        #expect(Array(body.suffix(5)) == [1, 0, 0, 0, 0])
        body.removeLast(5)
        var writer = ByteWriter()
        writer.out = body
        var decoded: [CallBlock.Entry] = []
        try CallBlock.decode(BlockFrame.seal(version: 1, body: writer, columns: [], level: 1)) { decoded.append($0) }
        #expect(decoded == calls)
    }

    /// A pairing in a later commit changes only labels: it is stored as a relabel, and the
    /// newest version of a call is its newest whole entry with the newest relabel's labels.
    @Test func newestVersionsApplyTheNewestRelabel() {
        let base = call(7, startMicros: 1)
        var paired = base
        paired.sample.facts.paired = true
        paired.sample.facts.peerID = 99
        paired.sample.sources |= 4
        let relabel = CallBlock.Entry(paired, before: base)
        #expect(relabel == .relabel(rowID: 7, facts: paired.sample.facts, sources: paired.sample.sources))
        var learned = base
        learned.spanID = SpanID(12345)
        #expect(CallBlock.Entry(learned, before: base) == .call(learned, isRevision: true))
        #expect(CallBlock.Entry(base, before: nil) == .call(base, isRevision: false))

        var older = paired
        older.sample.facts.responseFlags = "older"
        var versions = CallVersions()
        #expect(versions.newest(relabel) == nil)
        #expect(versions.newest(.relabel(rowID: 7, facts: older.sample.facts, sources: 1)) == nil)
        var revision = learned
        revision.sample.facts.peerID = 5
        var expected = learned
        expected.sample.facts = paired.sample.facts
        expected.sample.sources = paired.sample.sources
        #expect(versions.newest(.call(revision, isRevision: true)) == expected)
        #expect(versions.newest(.call(base, isRevision: false)) == nil)
        #expect(versions.newest(.call(call(8, startMicros: 1), isRevision: false)) == call(8, startMicros: 1))
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
            // The ten outbound calls the inbound ones paired changed only their labels.
            let second = try await database.pool.read { try Data.fetchOne($0, sql: "SELECT data FROM call_blocks ORDER BY id DESC") }
            var relabels = 0
            try CallBlock.decode([UInt8](try #require(second))) { if case .relabel = $0 { relabels += 1 } }
            #expect(relabels == 10)
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
