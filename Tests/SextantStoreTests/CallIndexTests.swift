import SextantModel
@testable import SextantStore
import Testing

@Suite struct CallIndexTests {
    private let second: Int64 = 1_000_000

    /// A stored call of `reporter` by proxy `proxy` to service 7.
    private func call(
        _ row: Int64, key: Int64? = nil, reporter: Reporter, proxy: Int64, startMicros: Int64 = 0,
        requestID: String? = nil, trace: String? = nil, span: String? = nil, parent: String? = nil,
        local: String? = nil, remote: String? = nil
    ) -> OpenCall {
        OpenCall(
            rowID: row, key: key ?? 100 + row,
            sample: CallSample(
                facts: CallFacts(
                    reporter: reporter.rawValue, proxyID: proxy, peerID: 0, serviceID: 7, requestProtocol: 0,
                    responseCode: 200, grpcStatus: -1, responseFlags: "-", securityPolicy: "none", paired: false),
                startMicros: startMicros, durationMicros: 1000, latencyBucket: 0, requestBytes: 0, responseBytes: 0,
                sources: 1),
            requestID: requestID.map(TextHash.of), localAddress: local.map(TextHash.of),
            remoteAddress: remote.map(TextHash.of), traceID: trace.flatMap { TraceID(hex: $0) },
            spanID: span.flatMap { SpanID(hex: $0) }, parentSpanID: parent.flatMap { SpanID(hex: $0) })
    }

    /// The rows of the calls registered under `link`, in the order the index visits them.
    private func rows(_ index: CallIndex, under link: CallIndex.Link?) -> [Int64] {
        var rows: [Int64] = []
        guard let link else { return [] }
        index.forEachCall(under: link) {
            rows.append($0.rowID)
            return true
        }
        return rows
    }

    @Test func findsACallByKeyAndItsOtherSideByLink() {
        var index = CallIndex(windowMicros: 60 * second, capacity: 100)
        index.insert(call(1, key: 11, reporter: .source, proxy: 1, requestID: "r-1", trace: "7", span: "a"), atMicros: 0)
        #expect(index.call(forKey: 11)?.rowID == 1)
        #expect(index.call(forKey: 12) == nil)
        #expect(index.nextRowID == 2)
        // The server span whose parent is the client span finds it, by span and by request id.
        let wanted = CallIndex.Link.partnerLinks(
            reporter: .destination, serviceID: 7, requestID: TextHash.of("r-1"), traceID: "7", spanID: "b",
            parentSpanID: "a")
        #expect(rows(index, under: wanted.span) == [1])
        #expect(rows(index, under: wanted.request) == [1])
        // Another service's report of the same request id, or another trace, does not.
        let elsewhere = CallIndex.Link.partnerLinks(
            reporter: .destination, serviceID: 8, requestID: TextHash.of("r-1"), traceID: "8", spanID: "b",
            parentSpanID: "a")
        #expect(rows(index, under: elsewhere.span).isEmpty)
        #expect(rows(index, under: elsewhere.request).isEmpty)
    }

    @Test func forgetsCallsPastTheWindowAndPastTheCapacity() {
        var index = CallIndex(windowMicros: 10 * second, capacity: 3)
        for i in Int64(0)..<3 {
            index.insert(call(i, reporter: .source, proxy: 1, requestID: "r-\(i)"), atMicros: i * second)
        }
        #expect(index.count == 3)
        // A fourth call pushes out the oldest.
        index.insert(call(3, reporter: .source, proxy: 1), atMicros: 3 * second)
        #expect(index.call(forKey: 100) == nil)
        #expect(rows(index, under: .request(id: TextHash.of("r-0"), serviceID: 7, reporter: .source)).isEmpty)
        #expect(index.call(forKey: 101)?.rowID == 1)
        // Past the window, every call older than it goes.
        index.expire(atMicros: 12 * second)
        #expect(index.call(forKey: 101) == nil)
        #expect(index.call(forKey: 102)?.rowID == 2)
        #expect(index.count == 2)
        #expect(rows(index, under: .request(id: TextHash.of("r-2"), serviceID: 7, reporter: .source)) == [2])
    }

    @Test func holdsThousandsOfCallsInOrderAndLetsTheOldestGoFirst() {
        var index = CallIndex(windowMicros: 60 * second, capacity: 5_000)
        for i in Int64(1)...6_000 {
            index.insert(call(i, reporter: .source, proxy: 1, requestID: "r-\(i % 4_000)"), atMicros: 0)
        }
        #expect(index.count == 5_000)
        #expect(index.call(forKey: 100 + 1_000) == nil)
        #expect(index.call(forKey: 100 + 1_001)?.rowID == 1_001)
        #expect(index.call(row: 6_000)?.rowID == 6_000)
        // Two calls carried request id r-1000 (rows 1,000 and 5,000): the one still in is found.
        #expect(rows(index, under: .request(id: TextHash.of("r-1000"), serviceID: 7, reporter: .source)) == [5_000])
        #expect(rows(index, under: .request(id: TextHash.of("r-1001"), serviceID: 7, reporter: .source)) == [1_001, 5_001])
        index.expire(atMicros: 61 * second)
        #expect(index.count == 0)
        #expect(index.call(row: 6_000) == nil)
    }

    @Test func findsWhatAModelOfTheLastCallsFindsWhileTheMapsStayBounded() {
        // Request ids repeat every 37 calls, so links name several calls and the first under a
        // link ages out before the others; a capacity of 100 lets calls go all the time.
        let capacity = 100
        var index = CallIndex(windowMicros: 3_600 * second, capacity: capacity)
        var model: [(row: Int64, key: Int64, request: String)] = []
        var largest = (keys: 0, links: 0)
        for row in Int64(1)...20_000 {
            let request = "r-\(row % 37)"
            // A span link of its own too, so the map of links fills with links of calls gone.
            let trace = String(row, radix: 16)
            index.insert(call(row, key: row * 7, reporter: .source, proxy: 1, requestID: request, trace: trace, span: "1"), atMicros: 0)
            model.append((row, row * 7, request))
            if model.count > capacity { model.removeFirst() }
            largest = (max(largest.keys, index.mapEntries.keys), max(largest.links, index.mapEntries.links))
            guard row % 97 == 0 else { continue }
            #expect(index.call(forKey: (row - Int64(capacity)) * 7) == nil)
            #expect(index.call(forKey: model[0].key)?.rowID == model[0].row)
            let span = CallIndex.Link.clientSpan(trace: TraceID(hex: String(row, radix: 16))!, span: SpanID(1))
            #expect(rows(index, under: span) == [row])
            for r in 0..<37 {
                let link = CallIndex.Link.request(id: TextHash.of("r-\(r)"), serviceID: 7, reporter: .source)
                #expect(rows(index, under: link) == model.filter { $0.request == "r-\(r)" }.map(\.row), "row \(row), r-\(r)")
            }
        }
        // Entries of calls gone are dropped as the maps fill, not kept for good.
        #expect(largest.keys <= 4 * capacity && largest.links <= 4 * capacity, "\(largest)")
    }

    @Test func findsEveryCallByRowAcrossGapsInTheRowIDs() {
        // Rows that another process (`sextant import`) took leave gaps in the writer's ids.
        var index = CallIndex(windowMicros: 60 * second, capacity: 1_000)
        let stored = Array(Int64(1)...300) + Array(Int64(1_000)...1_200) + [5_000, 5_002] + Array(Int64(9_000)...9_400)
        for row in stored { index.insert(call(row, reporter: .source, proxy: 1), atMicros: 0) }
        #expect(index.count == 904)
        for row in stored { #expect(index.call(row: row)?.rowID == row) }
        for row: Int64 in [0, 301, 999, 1_201, 5_001, 8_999, 9_401] { #expect(index.call(row: row) == nil) }
        // The oldest go past the capacity; rows older than the oldest in are not found.
        for row in Int64(9_401)...9_500 { index.insert(call(row, reporter: .source, proxy: 1), atMicros: 0) }
        #expect(index.call(row: 4) == nil)
        #expect(index.call(row: 5)?.rowID == 5)
        #expect(index.call(row: 5_002)?.rowID == 5_002)
        #expect(index.call(row: 9_500)?.rowID == 9_500)
    }

    @Test func linksAddedByAMergedReportGoWithTheCall() {
        var index = CallIndex(windowMicros: 10 * second, capacity: 10)
        let bare = call(1, reporter: .destination, proxy: 2)
        index.insert(bare, atMicros: 0)
        var merged = bare
        merged.requestID = TextHash.of("r")
        index.update(merged)
        index.update(merged)
        let link = CallIndex.Link.request(id: TextHash.of("r"), serviceID: 7, reporter: .destination)
        #expect(rows(index, under: link) == [1])
        #expect(index.call(row: 1)?.requestID == TextHash.of("r"))
        index.expire(atMicros: 11 * second)
        #expect(rows(index, under: link).isEmpty)
        #expect(index.count == 0)
    }

    @Test func callsThatRetentionDeletedAreNeitherMergedNorPaired() {
        var index = CallIndex(windowMicros: 60 * second, capacity: 10)
        index.insert(call(1, reporter: .source, proxy: 1, startMicros: 0, requestID: "r"), atMicros: 0)
        index.insert(call(2, reporter: .source, proxy: 1, startMicros: 5 * second, requestID: "s"), atMicros: 0)
        index.forget(startedBefore: 1 * second)
        #expect(index.call(forKey: 101) == nil)
        #expect(index.call(row: 1) == nil)
        #expect(index.call(forKey: 102)?.rowID == 2)
        let server = call(3, reporter: .destination, proxy: 2, requestID: "r")
        #expect(index.partner(of: server) == nil)
    }

    @Test func aServerSpanPairsWithItsClientSpanBeforeAnySameRequestID() {
        var index = CallIndex()
        // Two client reports carry the request id; only one is the server span's parent.
        index.insert(call(1, reporter: .source, proxy: 1, requestID: "r", trace: "7", span: "a"), atMicros: 0)
        index.insert(call(2, reporter: .source, proxy: 1, requestID: "r", trace: "7", span: "c"), atMicros: 0)
        let server = call(3, reporter: .destination, proxy: 2, requestID: "r", trace: "7", span: "d", parent: "c")
        #expect(index.partner(of: server)?.rowID == 2)
        // Paired, each names the other's proxy.
        let client = index.call(row: 2)!
        #expect(server.paired(with: client).sample.facts.peerID == 1)
        #expect(client.paired(with: server).sample.facts.peerID == 2)
        #expect(client.paired(with: server).isPaired)
    }

    @Test func byRequestIDTheClosestInTimeFromAnotherProxyAtTheSameAddressPairs() {
        var index = CallIndex()
        index.insert(call(1, reporter: .destination, proxy: 2, startMicros: 0, requestID: "r", local: "10.0.0.2:80"), atMicros: 0)
        index.insert(call(2, reporter: .destination, proxy: 3, startMicros: 900, requestID: "r", local: "10.0.0.3:80"), atMicros: 0)
        index.insert(call(3, reporter: .destination, proxy: 4, startMicros: 950, requestID: "r", local: "10.0.0.4:80"), atMicros: 0)
        // The same proxy's own report is never its other side.
        index.insert(call(4, reporter: .destination, proxy: 1, startMicros: 1000, requestID: "r"), atMicros: 0)
        let client = call(5, reporter: .source, proxy: 1, startMicros: 1000, requestID: "r")
        #expect(index.partner(of: client)?.rowID == 3)
        // Knowing the address it connected to, the client pairs with the proxy there.
        var connected = client
        connected.remoteAddress = TextHash.of("10.0.0.3:80")
        #expect(index.partner(of: connected)?.rowID == 2)
        // A paired report is taken.
        index.update(index.call(row: 2)!.paired(with: client))
        #expect(index.partner(of: connected) == nil)
    }

    @Test func aMergedReportAddsWhatTheCallDidNotKnowAndKeepsWhatWasMeasured() {
        let stored = call(1, reporter: .source, proxy: 1, requestID: "r")
        let report = PreparedRequest(
            CallReport(
                reporter: .source, proxy: .unknown, service: .unknown, startMicros: 5, durationMicros: 99_000,
                responseCode: 503, requestID: "r", traceID: TraceID(high: 1, low: 2), spanID: SpanID(3),
                remoteAddress: "10.0.0.9:80", channel: .accessLog))
        let merged = stored.merging(report, peerID: 9)
        #expect(merged.sample.sources == IngestChannel.accessLog.rawValue | IngestChannel.spans.rawValue)
        #expect(merged.sample.facts.peerID == 9)
        #expect(merged.traceID == TraceID(high: 1, low: 2))
        #expect(merged.remoteAddress == TextHash.of("10.0.0.9:80"))
        #expect(merged.sample.durationMicros == 1000)
        #expect(merged.sample.facts.responseCode == 200)
        // A peer already known stays.
        var known = stored
        known.sample.facts.peerID = 4
        #expect(known.merging(report, peerID: 9).sample.facts.peerID == 4)
    }
}
