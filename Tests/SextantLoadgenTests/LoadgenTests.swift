import Testing

@testable import SextantLoadgen

@Suite struct OpenLoopScheduleTests {
    @Test func spacesRequestsByTheirRecords() {
        let schedule = OpenLoopSchedule(recordsPerRequest: [30, 10], recordsPerSecond: 100)
        #expect(schedule.due(0) == 0)
        #expect(schedule.due(1) == 0.3)
        #expect(schedule.due(2) == 0.4)
        #expect(schedule.due(3) == 0.7)
        #expect(schedule.requests(within: 1.0) == 5)  // due at 0, .3, .4, .7 and .8; the next at 1.1
    }

    @Test func countsRequestsDueWithinAStep() {
        let schedule = OpenLoopSchedule(recordsPerRequest: [50], recordsPerSecond: 1000)
        #expect(schedule.requests(within: 10) == 200)
        #expect(schedule.requests(within: 0.001) == 1)
    }

    @Test func stepsRatesUpByAFactor() {
        #expect(OpenLoopSchedule.steps(from: 1000, factor: 1.5, count: 4) == [1000, 1500, 2250, 3375])
    }
}

@Suite struct PercentileTests {
    @Test func usesTheNearestRank() {
        let values = (1...100).map(Double.init)
        #expect(Percentile.of(values, 0.5) == 50)
        #expect(Percentile.of(values, 0.99) == 99)
        #expect(Percentile.of(values, 1) == 100)
        #expect(Percentile.of([7], 0.99) == 7)
        #expect(Percentile.of([], 0.5) == nil)
    }
}

@Suite struct KneeTests {
    func step(_ rate: Double, acked: Double, p99: Double, refused: Int = 0) -> StepResult {
        var result = StepResult(targetRecordsPerSecond: rate, seconds: 10, scheduledSeconds: 10)
        result.recordsAcked = Int(acked * 10)
        result.p50Milliseconds = p99 / 2
        result.p99Milliseconds = p99
        result.refused = refused
        return result
    }

    @Test func isTheHighestRateThatHeld() {
        let steps = [
            step(1000, acked: 1000, p99: 40), step(1500, acked: 1500, p99: 60), step(2250, acked: 2250, p99: 1200),
        ]
        #expect(StepResult.knee(of: steps)?.targetRecordsPerSecond == 1500)
    }

    @Test func aRefusalOrAShortfallFailsAStep() {
        #expect(step(1000, acked: 1000, p99: 10, refused: 1).failure() != nil)
        #expect(step(1000, acked: 800, p99: 10).failure() != nil)
        #expect(step(1000, acked: 990, p99: 10).failure() == nil)
        #expect(StepResult.knee(of: [step(1000, acked: 500, p99: 10)]) == nil)
    }
}

@Suite struct KneeSearchTests {
    /// Runs a search against a server that holds every rate up to `capacity`.
    private func rates(ladder: [Double], refineSteps: Int, capacity: Double) -> [Double] {
        var search = KneeSearch(ladder: ladder, refineSteps: refineSteps)
        var run: [Double] = []
        while let rate = search.next() {
            run.append(rate)
            search.record(rate, passed: rate <= capacity)
        }
        return run
    }

    @Test func refinesBetweenTheLastPassAndTheFirstFailure() {
        let ladder: [Double] = [1000, 2000, 4000, 8000]
        // 4000 fails: 2828 (√(2000·4000)) holds, then 3363 (√(2828·4000)) does not.
        #expect(rates(ladder: ladder, refineSteps: 2, capacity: 3000) == [1000, 2000, 4000, 2828, 3363])
        var search = KneeSearch(ladder: ladder, refineSteps: 2)
        for rate in [1000.0, 2000, 4000, 2828, 3363] { _ = search.next(); search.record(rate, passed: rate <= 3000) }
        #expect(search.highestPassed == 2828 && search.lowestFailed == 3363)
    }

    @Test func stopsAtTheLadderWithoutFailureOrWithoutAPass() {
        #expect(rates(ladder: [1000, 2000], refineSteps: 2, capacity: 5000) == [1000, 2000])
        #expect(rates(ladder: [1000, 2000], refineSteps: 2, capacity: 500) == [1000])
        #expect(rates(ladder: [1000, 2000, 4000], refineSteps: 0, capacity: 3000) == [1000, 2000, 4000])
    }
}

@Suite struct ProcStatsTests {
    @Test func readsCPUTicksAfterTheCommandName() {
        let stat = "4242 (sextant (x) y) S 1 4242 4242 0 -1 4194560 3000 0 0 0 1234 567 0 0 20 0 9 0 100 1000 200"
        #expect(ProcStats.cpuTicks(stat: stat) == 1801)
    }

    @Test func readsFieldsOfIoAndStatus() {
        #expect(ProcStats.field("write_bytes", in: "rchar: 10\nwrite_bytes: 8192\ncancelled_write_bytes: 0\n") == 8192)
        #expect(ProcStats.field("RssAnon", in: "VmRSS:\t  466000 kB\nRssAnon:\t   22528 kB\n") == 22528)
        #expect(ProcStats.field("RssFile", in: "RssAnon:\t 1 kB\n") == nil)
    }

    @Test func sumsACounterOverItsSeries() {
        let text = """
            # TYPE sextant_ingest_commits_total counter
            sextant_ingest_commits_total 12
            sextant_ingest_writer_busy_seconds_total{writer="a"} 1.5
            sextant_ingest_writer_busy_seconds_total{writer="b"} 0.5
            sextant_ingest_writer_busy_seconds_total_other 9
            """
        #expect(MetricsText.sum("sextant_ingest_writer_busy_seconds_total", in: text) == 2)
        #expect(MetricsText.sum("sextant_ingest_commits_total", in: text) == 12)
        #expect(MetricsText.sum("absent", in: text) == nil)
    }
}

@Suite struct BodyTemplateTests {
    @Test func writesAndReadsISOTimes() {
        #expect(BodyTemplate.iso(micros: 1_000_000_000_000_000) == "2001-09-09T01:46:40.000Z")
        #expect(BodyTemplate.iso(micros: 1_795_706_850_714_252) == "2026-11-26T15:27:30.714Z")
        #expect(BodyTemplate.parseISO(Array("2026-11-26T15:27:30.714Z".utf8)) == 1_795_706_850_714_000)
    }

    @Test func renderGivesFreshIdsAndRecentTimesKeepingPairsLinked() throws {
        let round = BookinfoRound(driverRequests: 6, seed: 1)
        let bodies = try JSONPayloads.zipkin(round, maxPerBody: 50)
        #expect((3...6).contains(bodies.count))  // sidecars that had calls in the round
        #expect(bodies.reduce(0) { $0 + $1.records } == round.sides.reduce(0) { $0 + $1.count })
        let now: Int64 = 1_795_706_850_000_000
        let a = String(decoding: bodies[0].render(nonce: 1, baseMicros: now), as: UTF8.self)
        let b = String(decoding: bodies[0].render(nonce: 2, baseMicros: now), as: UTF8.self)
        #expect(a != b && a.count == b.count)
        #expect(!a.contains("10000000"))  // no template time left
        #expect(a.contains("\"timestamp\":17957068"))
        // The caller's CLIENT span (productpage) and the callee's SERVER span (details) share the trace.
        let details = String(decoding: bodies[1].render(nonce: 1, baseMicros: now), as: UTF8.self)
        let template = String(decoding: bodies[0].body, as: UTF8.self)
        let traces = { (text: String) in Set(text.matches(of: /"traceId":"([0-9a-f]{32})"/).map { String($0.1) }) }
        let shared = traces(a).intersection(traces(details))
        #expect(!shared.isEmpty)
        // Every id is new as a whole: no trace id keeps a run of its template's digits.
        for trace in traces(template) {
            #expect(!a.contains(trace.prefix(12)) && !a.contains(trace.suffix(12)))
        }
        #expect(traces(a).isDisjoint(with: traces(b)))
        // Request ids keep Envoy's UUID shape and its version and variant digits.
        let requestIDs = a.matches(of: /"guid:x-request-id":"([0-9a-f-]{36})"/).map { String($0.1) }
        #expect(!requestIDs.isEmpty)
        for id in requestIDs {
            #expect(id.wholeMatch(of: /[0-9a-f]{8}-[0-9a-f]{4}-9[0-9a-f]{3}-a[0-9a-f]{3}-[0-9a-f]{12}/) != nil)
            #expect(!template.contains(id))
        }
    }

    @Test func binaryIdsAreRenewedWordByWord() throws {
        let id: [UInt8] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]
        let body: [UInt8] = [0xAA] + id + [0xBB] + Array(id[8...]) + [0xCC]
        let template = BodyTemplate(
            body: body, patches: try BodyTemplate.findPatches(in: body, textIDs: [], binaryIDs: [id, Array(id[8...])], times: []),
            records: 1, target: "")
        let out = template.render(nonce: 9, baseMicros: 0)
        #expect(out.count == body.count && out[0] == 0xAA && out[17] == 0xBB && out.last == 0xCC)
        #expect(Array(out[1..<9]) != Array(id[..<8]) && Array(out[9..<17]) != Array(id[8...]))
        // The low word of the trace id and the span id equal to it stay equal.
        #expect(Array(out[9..<17]) == Array(out[18..<26]))
    }

    @Test func accessLogLinesPatchStartTimes() throws {
        let round = BookinfoRound(driverRequests: 3, seed: 2)
        let bodies = try JSONPayloads.accessLog(round, maxPerBody: 50)
        let text = String(decoding: bodies[0].render(nonce: 7, baseMicros: 1_795_706_850_000_000), as: UTF8.self)
        #expect(text.contains("\"start_time\":\"2026-11-26T15:27:"))
        #expect(bodies[0].target.hasPrefix("/api/v1/accesslogs?node=sidecar~127.0.0.1~productpage"))
    }
}
