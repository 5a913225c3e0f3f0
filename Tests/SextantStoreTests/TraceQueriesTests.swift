import SextantModel
@testable import SextantStore
import Testing

@Suite struct TraceQueriesTests {
    private static let day: Int64 = 86_400_000_000

    @Test(arguments: [
        // service + minDuration, the benchmarked search: answered from the index alone.
        (TraceQuery(service: "reviews.default", minDurationMicros: 20_000, fromMicros: 0, toMicros: day, limit: 10),
            "COVERING INDEX spans_by_service_time_duration"),
        (TraceQuery(minDurationMicros: 1_000_000, fromMicros: 0, toMicros: day, limit: 10),
            "COVERING INDEX spans_by_time_duration"),
        (TraceQuery(service: "reviews.default", spanName: "get", fromMicros: 0, toMicros: day, limit: 10),
            "spans_by_service_name_time"),
    ])
    func searchesWalkTheIndexesChosenForThem(query: TraceQuery, index: String) async throws {
        try await withTemporaryDatabase { database, _ in
            _ = try await database.write(try zipkinFixtureBatches())
            let plan = try await database.traceSearchPlan(query)
            #expect(plan.contains { $0.contains(index) }, "\(plan)")
            // Newest first straight from the index: no sorting step.
            #expect(!plan.contains { $0.contains("TEMP B-TREE") }, "\(plan)")
        }
    }

    @Test func storesEachSpanOnceAndAssemblesTracesInStartOrder() async throws {
        try await withTemporaryDatabase { database, _ in
            let first = try await database.write(try zipkinFixtureBatches())
            let again = try await database.write(try zipkinFixtureBatches())
            #expect(first.spansStored == 312)
            #expect(again.spansStored == 0 && again.spansDuplicate == 312)
            let spans = try await database.spans(traceID: "8ea82b9b855cf7e015f7aa6903dd9b74")
            #expect(spans.count == 7)
            #expect(spans.map(\.startMicros) == spans.map(\.startMicros).sorted())
            #expect(try await database.traces(["0123456789abcdef0123456789abcdef"]).isEmpty)
            #expect(try await database.spanServiceNames() == [
                "details.default", "productpage.default", "ratings.default", "reviews.default",
            ])
        }
    }
}
