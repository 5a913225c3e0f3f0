import Foundation
import GRDB
import Logging
import SextantModel
@testable import SextantStore
import Testing

@Suite struct SpanBlockTests {
    @Test func everyFixtureSpanSurvivesItsBlock() throws {
        let spans = SpanBlock.sortedForBlock(try zipkinFixtureBatches().flatMap(\.spans))
        let data = SpanBlock.encode(spans)
        #expect(try SpanBlock.decode(data) == spans)
        // Real Envoy spans of 20 tags: far below a row with its indexes (README, "Storage").
        #expect(data.count / spans.count < 120, "\(data.count / spans.count) bytes a span")
    }

    @Test func refusesWhatItDidNotWrite() throws {
        let spans = try zipkinFixtureBatches()[0].spans
        var data = SpanBlock.encode(spans)
        #expect(throws: SpanBlock.FormatError.self) { try SpanBlock.decode([]) }
        #expect(throws: SpanBlock.FormatError.self) { try SpanBlock.decode([9] + data.dropFirst()) }
        #expect(throws: SpanBlock.FormatError.self) { try SpanBlock.decode(Array(data.prefix(data.count / 2))) }
        data[data.count - 3] ^= 0xFF
        #expect(throws: SpanBlock.FormatError.self) { try SpanBlock.decode(data) }
        #expect(try SpanBlock.decode(SpanBlock.encode([])).isEmpty)
    }

    @Test func aGroupIsReadAsItsBlocksOneAfterTheOther() throws {
        let spans = try zipkinFixtureBatches().flatMap(\.spans)
        let blocks = stride(from: 0, to: spans.count, by: 5).map {
            SpanBlock.encode(SpanBlock.sortedForBlock(Array(spans[$0..<min($0 + 5, spans.count)])))
        }
        #expect(blocks.count > 2)
        let group = SpanBlock.group(blocks)
        #expect(group.first == SpanBlock.groupVersion)
        #expect(try SpanBlock.parts(of: group) == blocks)
        #expect(try SpanBlock.decode(group) == blocks.flatMap { try SpanBlock.decode($0) })
        let wanted: Set<TraceID> = [spans[0].traceID, spans[spans.count - 1].traceID]
        #expect(
            try SpanBlock.decode(group, selection: .init(traces: wanted))
                == blocks.flatMap { try SpanBlock.decode($0, selection: .init(traces: wanted)) })
        // One block is stored as it is, and is its only part.
        #expect(SpanBlock.group([blocks[0]]) == blocks[0])
        #expect(try SpanBlock.parts(of: blocks[0]) == [blocks[0]])

        #expect(throws: SpanBlock.FormatError.self) { try SpanBlock.decode(Array(group.prefix(group.count - 1))) }
        #expect(throws: SpanBlock.FormatError.self) { try SpanBlock.decode(group + [0]) }
        #expect(throws: SpanBlock.FormatError.self) { try SpanBlock.decode([SpanBlock.groupVersion, 0xFF, 0xFF, 0x7F]) }
        // Groups do not nest.
        #expect(throws: SpanBlock.FormatError.self) { try SpanBlock.decode(SpanBlock.group([group, blocks[0]])) }
    }

    @Test func aCommitsBlocksAreJoinedIntoGroupsOfAFewHundredSpans() throws {
        func block(_ first: Int, _ count: Int, service: String) -> PreparedSpanBlock {
            let spans = (first..<(first + count)).map { (n: Int) -> Span in
                let failed: Bool = n % 100 == 0
                return Span(
                    traceID: TraceID(high: 3, low: UInt64(n / 2)), spanID: SpanID(UInt64(n)), kind: .server, name: "get",
                    startMicros: 1_000_000 + Int64(n), durationMicros: Int64(n), localEndpoint: .init(serviceName: service),
                    isError: failed)
            }
            return PreparedSpanBlock(spans)!
        }
        let limit = PreparedSpanBlock.groupSpans
        let sizes = [limit / 2 - 10, limit / 2 - 10, limit / 2, limit + 100, 10]
        var first = 0
        let blocks = sizes.enumerated().map { i, size in
            defer { first += size }
            return block(first, size, service: i % 2 == 0 ? "a" : "b")
        }
        let groups = PreparedSpanBlock.grouped(blocks)
        // The first two fit in one group; the third would pass the limit; a large block is alone.
        #expect(groups.map(\.count) == [sizes[0] + sizes[1], sizes[2], sizes[3], sizes[4]])
        #expect(groups.map { (try? SpanBlock.parts(of: $0.data).count) ?? 0 } == [2, 1, 1, 1])
        let joined = groups[0]
        let parts: [Span] = try SpanBlock.decode(blocks[0].data) + SpanBlock.decode(blocks[1].data)
        #expect(try SpanBlock.decode(joined.data) == parts)
        #expect((joined.minStart, joined.maxStart) == (blocks[0].minStart, blocks[1].maxStart))
        #expect((blocks[0].traces + blocks[1].traces).allSatisfy(joined.filter.mayContain))
        // Summary rows per service and name over both parts.
        let a = try #require(joined.names[NameKey(service: "a", name: "get", remoteService: nil)])
        let b = try #require(joined.names[NameKey(service: "b", name: "get", remoteService: nil)])
        #expect(a.count == sizes[0] && b.count == sizes[1])
        let failed: Int = (0..<(sizes[0] + sizes[1])).filter { $0 % 100 == 0 }.count
        let counted: Int = a.errors + b.errors
        #expect(counted == failed)
        #expect(b.maxDuration == Int64(sizes[0] + sizes[1] - 1))
        #expect(PreparedSpanBlock.grouped([]).isEmpty)
        // Every group is small to the compactor, so groups are merged like small blocks.
        #expect(PreparedSpanBlock.groupSpans < SpanBlockCompactor.Configuration().smallSpans)
    }

    @Test func zigzagKeepsTimesBeforeTheSpanStart() {
        for value: Int64 in [0, 1, -1, 123_456, -123_456, .max, .min] {
            #expect(SpanBlock.unzigzag(SpanBlock.zigzag(value)) == value)
        }
    }

    @Test func traceFilterHasNoFalseNegativesAndFewFalsePositives() throws {
        var generator = SplitMix64(seed: 0x7ACE)
        let inside = (0..<2000).map { _ in TraceID(high: generator.next(), low: generator.next()) }
        let filter = TraceFilter(traces: inside)
        #expect(inside.allSatisfy(filter.mayContain))
        let outside = (0..<20000).map { _ in TraceID(high: generator.next(), low: generator.next()) }
        #expect(outside.filter(filter.mayContain).count < 40)  // about 0.05 %: 10 expected
        #expect(TraceFilter(bytes: filter.bytes) == filter)
        #expect(TraceFilter(bytes: [1, 2, 3]) == nil)
    }

    @Test func recentKeysForgetTheOldestFirst() {
        var keys = RecentSpanKeys(capacity: 2)
        let answers = [1, 2, 1, 3, 1, 3].map { keys.insert($0) }
        // 3 pushes 1 out, so 1 is new again; 3 is still remembered.
        #expect(answers == [true, true, false, true, true, false])
    }

    @Test func recentKeysAgreeWithAListOfTheLastOnesAdded() {
        var keys = RecentSpanKeys(capacity: 128)
        var model: [UInt64] = []
        var generator = SplitMix64(seed: 0x5EED)
        for _ in 0..<5_000 {
            // Keys from a pool three times the capacity, so that both answers come often.
            let key = generator.next() % 384 &* 0x9E37_79B9_7F4A_7C15
            let new = !model.contains(key)
            #expect(keys.insert(key) == new)
            if new {
                model.append(key)
                if model.count > 128 { model.removeFirst() }
            }
        }
        // 128 keys at most: a map of 256 slots, never grown to 512 by a key over the capacity.
        #expect(keys.mapSlots == 256)
    }
}

@Suite struct SpanBlockStorageTests {
    private func span(_ trace: UInt64, _ id: UInt64, service: String, start: Int64, duration: Int64, error: Bool = false) -> Span {
        Span(
            traceID: TraceID(high: 7, low: trace), spanID: SpanID(id), kind: .server, name: "get", startMicros: start,
            durationMicros: duration, localEndpoint: .init(serviceName: service), tags: error ? ["error": "500"] : [:])
    }

    @Test func searchesBlocksNewestFirstAndStopsAtTheLimit() async throws {
        try await withTemporaryDatabase { database, _ in
            // Three commits, so three blocks; traces 1...9, one span each, starts a second apart.
            for commit in 0..<3 {
                let spans = (1...3).map { i -> Span in
                    let n = UInt64(commit * 3 + i)
                    return span(n, n, service: n % 2 == 0 ? "a" : "b", start: Int64(n) * 1_000_000, duration: Int64(n) * 1000,
                        error: n == 4)
                }
                _ = try await database.write([IngestBatch(spans: spans)])
            }
            func search(_ query: TraceQuery) async throws -> [UInt64] {
                try await database.traceIDs(matching: query).map { TraceID(hex: $0)!.low }
            }
            #expect(try await search(TraceQuery(fromMicros: 0, toMicros: .max, limit: 4)) == [9, 8, 7, 6])
            #expect(try await search(TraceQuery(service: "a", fromMicros: 0, toMicros: .max, limit: 10)) == [8, 6, 4, 2])
            #expect(try await search(TraceQuery(service: "b", minDurationMicros: 5000, fromMicros: 0, toMicros: .max, limit: 10)) == [9, 7, 5])
            #expect(try await search(TraceQuery(errorOnly: true, fromMicros: 0, toMicros: .max, limit: 10)) == [4])
            #expect(try await search(TraceQuery(fromMicros: 2_000_000, toMicros: 3_000_000, limit: 10)) == [3, 2])
            #expect(try await search(TraceQuery(annotationTerms: ["error": "500"], fromMicros: 0, toMicros: .max, limit: 10)) == [4])
            #expect(try await database.spanServiceNames() == ["a", "b"])
            #expect(try await database.rowCounts().spans == 9)
        }
    }

    @Test func readsSpansStoredBeforeBlocksAlongsideThem() async throws {
        try await withTemporaryDatabase { database, _ in
            let trace = TraceID(high: 7, low: 1)
            try await database.pool.write { db in
                try db.execute(
                    sql: """
                        INSERT INTO spans (trace_id, span_id, kind, name, service, start_us, duration_us, error, shared, tags)
                        VALUES (?, '00000000000000aa', 1, 'old', 'legacy', 1000000, 5, 0, 0, '{"k":"v"}')
                        """, arguments: [trace.hex])
            }
            _ = try await database.write([IngestBatch(spans: [span(1, 0xbb, service: "new", start: 2_000_000, duration: 7)])])
            let spans = try await database.spans(traceID: trace.hex)
            #expect(spans.map(\.spanID.value) == [0xaa, 0xbb])
            #expect(spans.first?.tags == ["k": "v"])
            #expect(try await database.spanServiceNames() == ["legacy", "new"])
            #expect(try await database.traceIDs(matching: TraceQuery(fromMicros: 0, toMicros: .max, limit: 5)) == [trace.hex])
        }
    }

    @Test func aCommitOfSeveralRequestsWritesOneBlockRow() async throws {
        try await withTemporaryDatabase { database, _ in
            // Three requests' spans in one transaction, as the writer commits what is queued.
            let batches = (0..<3).map { request in
                IngestBatch(spans: (1...4).map { i -> Span in
                    let n = UInt64(request * 4 + i)
                    return span(n % 5, n, service: request == 1 ? "b" : "a", start: Int64(n) * 1_000_000, duration: Int64(n) * 1000)
                })
            }
            let summaries = try await database.writeEach(batches)
            #expect(summaries.map(\.spansStored) == [4, 4, 4])
            let rows = try await database.pool.read { db in
                try Row.fetchAll(db, sql: "SELECT span_count, data FROM span_blocks").map { ($0[0] as Int, [UInt8]($0[1] as Data)) }
            }
            #expect(rows.count == 1)
            #expect(rows.first?.0 == 12)
            #expect(try rows.first.map { try SpanBlock.parts(of: $0.1).count } == 3)
            // Summary rows per service and name of the whole row, not per request.
            let names = try await database.pool.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM span_block_names") }
            #expect(names == 2)
            #expect(try await database.spans(traceID: TraceID(high: 7, low: 2).hex).map(\.spanID.value) == [2, 7, 12])
            #expect(
                try await database.traceIDs(matching: TraceQuery(service: "b", fromMicros: 0, toMicros: .max, limit: 10))
                    .map { TraceID(hex: $0)!.low } == [3, 2, 1, 0])
            #expect(try await database.rowCounts().spans == 12)
        }
    }

    @Test func aResentSpanIsCountedAndReadOnce() async throws {
        try await withTemporaryDatabase { database, folder in
            let one = span(1, 1, service: "a", start: 1_000_000, duration: 5)
            let first = try await database.write([IngestBatch(spans: [one])])
            let again = try await database.write([IngestBatch(spans: [one, span(1, 2, service: "a", start: 1_000_001, duration: 5)])])
            #expect(first.spansStored == 1 && again.spansStored == 1 && again.spansDuplicate == 1)
            // After a restart the writer no longer remembers it: it is stored again, and read once.
            let reopened = try SextantDatabase(configuration: .init(directory: folder), logger: Logger.quiet)
            _ = try await reopened.write([IngestBatch(spans: [one])])
            #expect(try await reopened.spans(traceID: one.traceID.hex).map(\.spanID.value) == [1, 2])
        }
    }

    @Test func retentionDropsWholeBlocksPastTheHorizon() async throws {
        try await withTemporaryDatabase { database, _ in
            let now: Int64 = 1_795_700_400
            _ = try await database.write([IngestBatch(spans: [span(1, 1, service: "a", start: (now - 7200) * 1_000_000, duration: 5)])])
            _ = try await database.write([IngestBatch(spans: [span(2, 2, service: "a", start: (now - 60) * 1_000_000, duration: 5)])])
            var config = RetentionService.Configuration()
            config.rawSeconds = 3600
            let retention = RetentionService(database: database, configuration: config, logger: Logger.quiet, now: { now })
            try await retention.enforce()
            #expect(try await database.spans(traceID: TraceID(high: 7, low: 1).hex).isEmpty)
            #expect(try await database.spans(traceID: TraceID(high: 7, low: 2).hex).count == 1)
            let names = try await database.pool.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM span_block_names") }
            #expect(names == 1)
        }
    }
}

@Suite struct SpanBlockCompactionTests {
    @Test func mergesSettledSmallBlocksAndKeepsEverySpanOnce() async throws {
        try await withTemporaryDatabase { database, folder in
            let now: Int64 = 1_795_700_400
            // 30 commits of 3 spans, ten minutes ago (one trace resent across two commits), and one
            // recent commit that must wait.
            for commit in 0..<30 {
                let spans = (0..<3).map { i -> Span in
                    let n = UInt64(commit * 3 + i)
                    return Span(
                        traceID: TraceID(high: 1, low: n / 2), spanID: SpanID(n), kind: .server, name: "get",
                        startMicros: (now - 600) * 1_000_000 + Int64(n), durationMicros: 10,
                        localEndpoint: .init(serviceName: commit % 2 == 0 ? "a" : "b"))
                }
                _ = try await database.write([IngestBatch(spans: spans)])
            }
            let recent = Span(traceID: TraceID(high: 2, low: 1), spanID: SpanID(1), kind: .server, startMicros: now * 1_000_000, durationMicros: 1)
            _ = try await database.write([IngestBatch(spans: [recent])])
            let before = try await database.traceIDs(matching: TraceQuery(fromMicros: 0, toMicros: .max, limit: 100))

            var config = SpanBlockCompactor.Configuration()
            config.targetSpans = 40
            let compactor = SpanBlockCompactor(database: database, configuration: config, logger: Logger.quiet, now: { now })
            #expect(try await compactor.compact() == 30)
            #expect(try await compactor.compact() == 0)
            let blocks = try await database.pool.read { try Int.fetchAll($0, sql: "SELECT span_count FROM span_blocks ORDER BY id") }
            #expect(blocks == [1, 39, 39, 12])  // the recent one untouched, 90 spans in blocks of at most 40
            #expect(try await database.rowCounts().spans == 91)
            #expect(try await database.traceIDs(matching: TraceQuery(fromMicros: 0, toMicros: .max, limit: 100)) == before)
            #expect(try await database.spans(traceID: TraceID(high: 1, low: 7).hex).map(\.spanID.value) == [14, 15])
            #expect(try await database.spanServiceNames() == ["a", "b", "unknown"])
            // The filters in memory are those on disk: a fresh start finds the same.
            let reopened = try SextantDatabase(configuration: .init(directory: folder), logger: Logger.quiet)
            #expect(try await reopened.spans(traceID: TraceID(high: 1, low: 44).hex).map(\.spanID.value) == [88, 89])
        }
    }
}

@Suite struct SpanBlockSelectionTests {
    @Test func mergingBlocksGivesWhatDecodingAndReEncodingTheirSpansGives() throws {
        var spans = try zipkinFixtureBatches().flatMap(\.spans)
        // A span resent, and another with the same id from another service: kept, once each.
        spans.append(spans[3])
        var other = spans[5]
        other.localEndpoint = Span.Endpoint(serviceName: "elsewhere")
        other.tags["extra"] = "1"
        other.annotations = [Span.Annotation(timestampMicros: other.startMicros - 5, value: "early")]
        spans.append(other)
        var bare = spans[7]
        bare.localEndpoint = nil
        bare.remoteEndpoint = Span.Endpoint(ipv6: "::1", port: 9080)
        bare.parentID = nil
        spans.append(bare)
        // Blocks of a few spans each, as commits write them.
        let blocks = stride(from: 0, to: spans.count, by: 7).map {
            SpanBlock.encode(SpanBlock.sortedForBlock(Array(spans[$0..<min($0 + 7, spans.count)])))
        }
        var merger = SpanBlockMerger()
        for block in blocks { try merger.add(block) }
        let prepared = merger.prepared()
        let merged = try #require(prepared)
        // A group of the same blocks merges into the same block.
        var groupMerger = SpanBlockMerger()
        try groupMerger.add(SpanBlock.group(Array(blocks.prefix(2))))
        for block in blocks.dropFirst(2) { try groupMerger.add(block) }
        #expect(groupMerger.prepared()?.data == merged.data)
        let expected = try #require(
            PreparedSpanBlock(SextantDatabase.assembled(try blocks.flatMap { try SpanBlock.decode($0) })))
        #expect(merged.data == expected.data)
        #expect(merged.count == expected.count)
        #expect(merged.count == spans.count - 1)
        #expect((merged.minStart, merged.maxStart) == (expected.minStart, expected.maxStart))
        #expect(merged.filter == expected.filter)
        #expect(merged.names.keys.count == expected.names.keys.count)
        for (key, summary) in expected.names {
            let mine = try #require(merged.names[key])
            #expect(
                [mine.minStart, mine.maxStart, mine.maxDuration, Int64(mine.errors), Int64(mine.count)]
                    == [summary.minStart, summary.maxStart, summary.maxDuration, Int64(summary.errors), Int64(summary.count)])
        }
        // A block whose dictionary is too short for its indices is refused.
        var none = SpanBlockMerger()
        let nothing = none.prepared()
        #expect(nothing == nil)
        #expect(throws: SpanBlock.FormatError.self) { try none.add(Array(blocks[0].prefix(blocks[0].count / 2))) }
    }

    @Test func decodesOnlyTheTracesAskedFor() throws {
        let spans = SpanBlock.sortedForBlock(try zipkinFixtureBatches().flatMap(\.spans))
        let data = SpanBlock.encode(spans)
        let wanted: Set<TraceID> = [spans[0].traceID, spans[spans.count / 2].traceID, TraceID(high: 1, low: 1)]
        #expect(try SpanBlock.decode(data, selection: .init(traces: wanted)) == spans.filter { wanted.contains($0.traceID) })
        #expect(try SpanBlock.decode(data, selection: .init(traces: [])).isEmpty)
        var slow = SpanBlock.Selection()
        slow.service = "reviews.default"
        slow.minDurationMicros = 5000
        let expected = spans.filter { $0.serviceName == "reviews.default" && $0.durationMicros >= 5000 }
        #expect(!expected.isEmpty && expected.count < spans.count / 4)
        #expect(try SpanBlock.decode(data, selection: slow) == expected)
        slow.errorOnly = true
        #expect(try SpanBlock.decode(data, selection: slow) == expected.filter(\.isError))
        slow.service = "nobody"
        #expect(try SpanBlock.decode(data, selection: slow).isEmpty)
    }
}

@Suite struct SpanBlockIndexTests {
    private func entry(_ id: Int64) -> SpanBlockIndex.Entry {
        let trace = TraceID(high: UInt64(id), low: UInt64(id) &* 31)
        return SpanBlockIndex.Entry(
            id: id, minStartMicros: id, maxStartMicros: id, filter: TraceFilter(traces: [trace]), removedAt: nil)
    }

    /// Blocks merged away leave the index, and with them the room a backlog of small blocks took.
    @Test func givesBackTheRoomOfBlocksMergedAway() {
        let index = SpanBlockIndex(removalGrace: .zero)
        for id in 1...20_000 { index.add(entry(Int64(id))) }
        #expect(index.capacity >= 20_000)
        #expect(index.blocks(mayHold: TraceID(high: 7, low: 7 &* 31)).contains(7))
        index.remove(ids: Set((1...19_990).map(Int64.init)))
        // Listed until the grace is over (none here), then gone at the next removal.
        #expect(index.count == 20_000)
        index.remove(ids: [20_000])
        #expect(index.count == 10)
        #expect(index.capacity < 5_000)
        #expect(index.blocks(mayHold: TraceID(high: 19_995, low: 19_995 &* 31)).contains(19_995))
    }
}
