import Foundation
import GRDB
package import SextantModel

// MARK: - Traces

extension SextantDatabase {
    /// Every stored span of a trace (from any channel), in start order, each once. Spans that
    /// arrive after the others join their trace here, as traces are assembled when read.
    /// - Parameter traceID: 32 lowercase hex digits.
    package func spans(traceID: String) async throws -> [Span] {
        try await traces([traceID]).first ?? []
    }

    /// The spans of several traces, one array per trace found, in the order of `traceIDs`.
    package func traces(_ traceIDs: [String]) async throws -> [[Span]] {
        let ids = traceIDs.compactMap { TraceID(hex: $0) }
        return try await pool.read { db in
            let inBlocks = try self.blockSpans(of: ids, db)
            let legacy = try db.cachedStatement(
                sql: "SELECT \(Self.spanColumns) FROM spans WHERE trace_id = ? ORDER BY start_us, id")
            return try ids.compactMap { id in
                let spans = Self.assembled(inBlocks[id, default: []] + (try Row.fetchAll(legacy, arguments: [id]).map(Self.span)))
                return spans.isEmpty ? nil : spans
            }
        }
    }

    /// A trace's spans in start order, a span sent twice (same id, kind and service) kept once.
    static func assembled(_ spans: [Span]) -> [Span] {
        var seen = Set<SpanIdentity>()
        return spans.sorted { ($0.startMicros, $0.spanID.value) < ($1.startMicros, $1.spanID.value) }
            .filter { seen.insert(SpanIdentity($0)).inserted }
    }

    private struct SpanIdentity: Hashable {
        var span: SpanID
        var kind: Span.Kind
        var service: String

        init(_ span: Span) {
            self.span = span.spanID
            kind = span.kind
            service = span.serviceName
        }
    }

    /// The ids of the traces with a span matching `query`, newest matching span first.
    ///
    /// Reads the blocks whose summaries may match, newest first, and stops once `limit` traces
    /// have a match newer than anything left; spans stored before blocks are searched through
    /// their indexes the same way (see the README's benchmark).
    package func traceIDs(matching query: TraceQuery) async throws -> [String] {
        let (sql, arguments) = Self.traceSearch(query)
        let checksAnnotations = !query.annotationTerms.isEmpty
        let limit = max(query.limit, 0)
        return try await pool.read { db in
            guard limit > 0 else { return [] }
            var newest: [String: Int64] = [:]
            for (trace, start) in try self.blockTraceIDs(matching: query, db) { newest[trace.hex] = start }
            var legacy = 0
            let rows = try Row.fetchCursor(db, sql: sql, arguments: arguments)
            while let row = try rows.next() {
                let traceID: String = row[0]
                if newest[traceID] != nil { continue }
                if checksAnnotations {
                    let tags = SpanJSON.decodeObject(row[2])
                    let annotations = (row[3] as String?).map(SpanJSON.decodeAnnotations) ?? []
                    guard query.matchesAnnotationTerms(tags: tags, annotations: annotations) else { continue }
                }
                newest[traceID] = row[1]
                legacy += 1
                if legacy == limit { break }
            }
            return newest.sorted { ($0.value, $0.key) > ($1.value, $1.key) }.prefix(limit).map(\.key)
        }
    }

    /// The SQL of a trace search: the trace id of every matching span, newest first (with tags
    /// and annotations when annotation terms must be checked).
    static func traceSearch(_ query: TraceQuery) -> (sql: String, arguments: StatementArguments) {
        var sql = "SELECT trace_id, start_us"
        if !query.annotationTerms.isEmpty { sql += ", tags, annotations" }
        sql += " FROM spans WHERE start_us >= ? AND start_us <= ?"
        var arguments: StatementArguments = [query.fromMicros, query.toMicros]
        addSearchConditions(
            query, to: &sql, &arguments, minDuration: "duration_us >= ?", maxDuration: "duration_us <= ?", error: "error = 1")
        return (sql + " ORDER BY start_us DESC", arguments)
    }

    /// A trace search's conditions on a table with `service`, `remote_service` and `name` columns,
    /// appended to `sql` (after a WHERE) with their arguments; each table says how it holds
    /// durations and errors (a condition nil: the table cannot tell, the spans are checked later).
    static func addSearchConditions(
        _ query: TraceQuery, to sql: inout String, _ arguments: inout StatementArguments, minDuration: String,
        maxDuration: String?, error: String
    ) {
        func add(_ condition: String, _ value: some DatabaseValueConvertible) {
            sql += " AND " + condition
            _ = arguments.append(contentsOf: [value])
        }
        if let service = query.service { add("service = ?", service) }
        if let remote = query.remoteService { add("remote_service = ?", remote) }
        if let name = query.spanName { add("name = ?", name) }
        if let min = query.minDurationMicros { add(minDuration, min) }
        if let max = query.maxDurationMicros, let maxDuration { add(maxDuration, max) }
        if query.errorOnly { sql += " AND " + error }
    }

    /// SQLite's plan for a trace search, one line per step.
    internal /* for testing */ func traceSearchPlan(_ query: TraceQuery) async throws -> [String] {
        let (sql, arguments) = Self.traceSearch(query)
        return try await pool.read { db in
            try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + sql, arguments: arguments).map { $0["detail"] }
        }
    }

    // MARK: - Names

    /// Every local service name of the stored spans, sorted.
    package func spanServiceNames() async throws -> [String] {
        // Spans in blocks: their summary rows. Older spans: the (service, start_us) index, walked
        // one distinct value at a time instead of reading every span.
        try await pool.read { db in
            try Self.union(String.fetchAll(db, sql: "SELECT DISTINCT service FROM span_block_names"), String.fetchAll(
                db,
                sql: """
                    WITH RECURSIVE names(name) AS (
                        SELECT min(service) FROM spans
                        UNION ALL
                        SELECT (SELECT min(service) FROM spans WHERE service > names.name) FROM names
                        WHERE names.name IS NOT NULL
                    )
                    SELECT name FROM names WHERE name IS NOT NULL
                    """))
        }
    }

    /// The span names (operations) of one service, sorted.
    package func spanNames(service: String) async throws -> [String] {
        try await pool.read { db in
            let inBlocks = try String.fetchAll(
                db, sql: "SELECT DISTINCT name FROM span_block_names WHERE service = ?", arguments: [service])
            return try Self.union(inBlocks, String.fetchAll(
                db,
                sql: """
                    WITH RECURSIVE names(name) AS (
                        SELECT min(name) FROM spans WHERE service = ?
                        UNION ALL
                        SELECT (SELECT min(name) FROM spans WHERE service = ? AND name > names.name) FROM names
                        WHERE names.name IS NOT NULL
                    )
                    SELECT name FROM names WHERE name IS NOT NULL
                    """, arguments: [service, service]))
        }
    }

    /// The remote services named by one service's spans, sorted.
    package func remoteServiceNames(service: String) async throws -> [String] {
        try await pool.read { db in
            let inBlocks = try String.fetchAll(
                db,
                sql: "SELECT DISTINCT remote_service FROM span_block_names WHERE service = ? AND remote_service IS NOT NULL",
                arguments: [service])
            return try Self.union(inBlocks, String.fetchAll(
                db,
                sql: """
                    WITH RECURSIVE names(name) AS (
                        SELECT min(remote_service) FROM spans WHERE service = ? AND remote_service IS NOT NULL
                        UNION ALL
                        SELECT (
                            SELECT min(remote_service) FROM spans
                            WHERE service = ? AND remote_service IS NOT NULL AND remote_service > names.name
                        ) FROM names WHERE names.name IS NOT NULL
                    )
                    SELECT name FROM names WHERE name IS NOT NULL
                    """, arguments: [service, service]))
        }
    }

    /// Two name lists as one, sorted, each name once.
    private static func union(_ a: [String], _ b: [String]) -> [String] {
        Array(Set(a).union(b)).sorted()
    }

    // MARK: - Calls of a trace

    /// The calls that proxies reported with spans of this trace, with their identities resolved.
    /// Calls are found by time, between the trace's first and last span start (a call's time is
    /// its span's start) give or take a second, in the call blocks whose trace filter may hold it.
    package func spanCalls(traceID: String, spans: [Span]) async throws -> [SpanCall] {
        guard let first = spans.map(\.startMicros).min(), let last = spans.map(\.startMicros).max(),
            let trace = TraceID(hex: traceID)
        else { return [] }
        return try await pool.read { db in
            var calls: [OpenCall] = []
            try Self.storedCalls(db, fromMicros: first - 1_000_000, toMicros: last + 1_000_001, trace: trace) { call in
                if call.spanID != nil { calls.append(call) }
            }
            guard !calls.isEmpty else { return [] }
            calls.sort { ($0.sample.startMicros, $0.rowID) < ($1.sample.startMicros, $1.rowID) }
            let dictionaries = try Dictionaries(db)
            return calls.map { call in
                let f = call.sample.facts
                return SpanCall(
                    spanID: call.spanID?.description ?? "", reporter: call.reporter,
                    proxy: dictionaries.workload(f.proxyID),
                    peer: f.peerID == 0 ? nil : dictionaries.workload(f.peerID),
                    service: dictionaries.service(f.serviceID),
                    requestProtocol: RequestProtocol(rawValue: f.requestProtocol) ?? .http,
                    responseCode: f.responseCode, grpcStatus: f.grpcStatus < 0 ? nil : f.grpcStatus)
            }
        }
    }

    /// Per edge as a proxy reported it, among the traced calls of the minutes that overlap
    /// `[from, to)` (µs): the slowest call, and the newest failed one (as `CallOutcome.isError`
    /// classifies it), from `call_examples`, so the cost follows the edges and minutes, not the calls.
    package func callExamples(fromMicros: Int64, toMicros: Int64) async throws -> [CallExample] {
        let first = RollupDeltas.bucket(seconds: RollupDeltas.floorSeconds(micros: fromMicros), tier: 60)
        let end = RollupDeltas.floorSeconds(micros: toMicros - 1) + 1
        return try await pool.read { db in
            let dictionaries = try Dictionaries(db)
            struct Edge: Hashable {
                var reporter: Int, proxy: Int64, peer: Int64, service: Int64, requestProtocol: Int
            }
            var slowest: [Edge: (trace: String, micros: Int64)] = [:]
            var newestFailed: [Edge: (trace: String, startMicros: Int64, micros: Int64)] = [:]
            let rows = try Row.fetchCursor(
                db.cachedStatement(
                    sql: """
                        SELECT reporter, proxy_id, peer_id, service_id, protocol, slow_trace, slow_us, failed_trace,
                            failed_ts_us, failed_us
                        FROM call_examples WHERE bucket >= ? AND bucket < ?
                        """), arguments: [first, end])
            while let row = try rows.next() {
                let edge = Edge(reporter: row[0], proxy: row[1], peer: row[2], service: row[3], requestProtocol: row[4])
                if let trace: String = row[5], (row[6] as Int64) > slowest[edge]?.micros ?? -1 {
                    slowest[edge] = (trace, row[6])
                }
                if let trace: String = row[7], (row[8] as Int64) > newestFailed[edge]?.startMicros ?? -1 {
                    newestFailed[edge] = (trace, row[8], row[9])
                }
            }
            func example(_ edge: Edge, trace: String, micros: Int64, isError: Bool) -> CallExample {
                CallExample(
                    reporter: Reporter(rawValue: edge.reporter) ?? .source, proxy: dictionaries.workload(edge.proxy),
                    peer: edge.peer == 0 ? nil : dictionaries.workload(edge.peer),
                    service: dictionaries.service(edge.service),
                    requestProtocol: RequestProtocol(rawValue: edge.requestProtocol) ?? .http, traceID: trace,
                    durationMicros: micros, isError: isError)
            }
            return slowest.map { example($0.key, trace: $0.value.trace, micros: $0.value.micros, isError: false) }
                + newestFailed.map { example($0.key, trace: $0.value.trace, micros: $0.value.micros, isError: true) }
        }
    }

    // MARK: - Rows

    private static let spanColumns = """
        trace_id, span_id, parent_id, kind, name, start_us, duration_us, local_endpoint, remote_endpoint,
        annotations, tags, error, shared
        """

    private static func span(_ row: Row) -> Span {
        Span(
            traceID: row[0], spanID: row[1], parentID: row[2], kind: Span.Kind(rawValue: row[3]) ?? .unspecified,
            name: row[4], startMicros: row[5], durationMicros: row[6],
            localEndpoint: (row[7] as String?).flatMap(SpanJSON.decodeEndpoint),
            remoteEndpoint: (row[8] as String?).flatMap(SpanJSON.decodeEndpoint),
            annotations: (row[9] as String?).map(SpanJSON.decodeAnnotations) ?? [],
            tags: SpanJSON.decodeObject(row[10]), isError: row[11], shared: row[12])
    }
}

// MARK: - Reading the JSON columns

extension SpanJSON {
    /// Reads back an endpoint written by `encode(_: Span.Endpoint)`.
    static func decodeEndpoint(_ text: String) -> Span.Endpoint? {
        guard let data = text.data(using: .utf8),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { return nil }
        return Span.Endpoint(
            serviceName: object["serviceName"] as? String, ipv4: object["ipv4"] as? String,
            ipv6: object["ipv6"] as? String, port: (object["port"] as? NSNumber)?.intValue)
    }

    /// Reads back annotations written by `encode(_: [Span.Annotation])`.
    static func decodeAnnotations(_ text: String) -> [Span.Annotation] {
        guard let data = text.data(using: .utf8),
            let array = try? JSONSerialization.jsonObject(with: data) as? [[String: Any]]
        else { return [] }
        return array.compactMap { item in
            guard let ts = (item["timestamp"] as? NSNumber)?.int64Value, let value = item["value"] as? String else {
                return nil
            }
            return Span.Annotation(timestampMicros: ts, value: value)
        }
    }
}
