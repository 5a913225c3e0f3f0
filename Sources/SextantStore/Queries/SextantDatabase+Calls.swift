internal import Foundation
import GRDB
import GRDBSQLite
package import SextantModel

extension SextantDatabase {
    /// Reads one kind of raw record over `[from, to)` (µs) as aggregates.
    typealias RawAggregates = @Sendable (Database, Dictionaries, Int64, Int64) throws -> [CallAggregate]

    /// Calls that started in `[from, to)` (µs), grouped by every dimension the graph and the
    /// signals need: the middle from the coarsest rollup tiers that fit (see `TierPlan`), only the
    /// partial minutes at the edges from the raw calls.
    package func callAggregates(fromMicros: Int64, toMicros: Int64) async throws -> [CallAggregate] {
        try await tieredAggregates(fromMicros: fromMicros, toMicros: toMicros, tcp: false, raw: Self.rawCallAggregates)
    }

    /// The raw-calls path of `callAggregates`, for any range (tests compare the tiers with it).
    package func rawCallAggregates(fromMicros: Int64, toMicros: Int64) async throws -> [CallAggregate] {
        try await pool.read { db in try Self.rawCallAggregates(db, try Dictionaries(db), fromMicros, toMicros) }
    }

    /// TCP connections that started in `[from, to)` (µs), as aggregates with protocol `tcp`:
    /// `count` is connections, `requestBytes` bytes received from the client, `responseBytes` bytes
    /// sent to it. Tiers as for `callAggregates`.
    package func connectionAggregates(fromMicros: Int64, toMicros: Int64) async throws -> [CallAggregate] {
        try await tieredAggregates(
            fromMicros: fromMicros, toMicros: toMicros, tcp: true, raw: Self.rawConnectionAggregates)
    }

    /// The raw-connections path of `connectionAggregates`, for any range (tests compare the tiers with it).
    package func rawConnectionAggregates(fromMicros: Int64, toMicros: Int64) async throws -> [CallAggregate] {
        try await pool.read { db in try Self.rawConnectionAggregates(db, try Dictionaries(db), fromMicros, toMicros) }
    }

    private func tieredAggregates(
        fromMicros: Int64, toMicros: Int64, tcp: Bool, raw: @escaping RawAggregates
    ) async throws -> [CallAggregate] {
        let plan = TierPlan(fromMicros: fromMicros, toMicros: toMicros)
        await flushRollupsOrWarn()
        return try await pool.read { db in
            let dictionaries = try Dictionaries(db)
            var result: [CallAggregate] = []
            for range in plan.raw {
                result += try raw(db, dictionaries, range.lowerBound, range.upperBound)
            }
            result += try Self.rollupAggregates(db, dictionaries, plan.rollups, tcp: tcp)
            return result
        }
    }

    private static func rawCallAggregates(
        _ db: Database, _ dictionaries: Dictionaries, _ fromMicros: Int64, _ toMicros: Int64
    ) throws -> [CallAggregate] {
        struct Group: Hashable {
            var facts: CallFacts
            var latencyBucket: Int
            var sources: Int
        }
        struct Sums {
            var count = 0, duration: Int64 = 0, requestBytes: Int64 = 0, responseBytes: Int64 = 0

            mutating func add(_ s: CallSample) {
                count += 1
                duration += s.durationMicros
                requestBytes += s.requestBytes
                responseBytes += s.responseBytes
            }
        }
        var groups: [Group: Sums] = [:]
        try storedCalls(db, fromMicros: fromMicros, toMicros: toMicros) { call in
            let s = call.sample
            groups[Group(facts: s.facts, latencyBucket: s.latencyBucket, sources: s.sources), default: Sums()]
                .add(s)
        }
        return groups.map { group, sums in
            let f = group.facts
            return CallAggregate(
                reporter: Reporter(rawValue: f.reporter) ?? .source, proxy: dictionaries.workload(f.proxyID),
                peer: f.peerID == 0 ? nil : dictionaries.workload(f.peerID), service: dictionaries.service(f.serviceID),
                requestProtocol: RequestProtocol(rawValue: f.requestProtocol) ?? .http, responseCode: f.responseCode,
                grpcStatus: f.grpcStatus < 0 ? nil : f.grpcStatus, responseFlags: f.responseFlags, paired: f.paired,
                latency: LatencySketch(index: group.latencyBucket, count: sums.count, sumMicros: Double(sums.duration)),
                sources: IngestChannel(rawValue: group.sources), count: sums.count, durationMicrosSum: sums.duration,
                requestBytes: sums.requestBytes, responseBytes: sums.responseBytes)
        }
    }

    /// Aggregates from the rollup tiers, one per series over every (tier, bucket range) given,
    /// of TCP series or of request series.
    ///
    /// Each range is one range of the rollup key, read in one pass; rows are summed per series
    /// here, with columns read straight from the statement since this loop sees every rollup row
    /// of the window. The series' labels are looked up once each at the end.
    private static func rollupAggregates(
        _ db: Database, _ dictionaries: Dictionaries, _ ranges: [(Int64, Range<Int64>)], tcp: Bool
    ) throws -> [CallAggregate] {
        var sums: [Int64: RollupSums] = [:]
        let statement = try db.cachedStatement(
            sql: """
                SELECT series_id, count, duration_us, request_bytes, response_bytes, sources, latency
                FROM call_rollups WHERE tier = ? AND bucket >= ? AND bucket < ?
                """)
        let sqlite = statement.sqliteStatement
        for (tier, buckets) in ranges {
            let rows = try Row.fetchCursor(statement, arguments: [tier, buckets.lowerBound, buckets.upperBound])
            while try rows.next() != nil {
                let seriesID = sqlite3_column_int64(sqlite, 0)
                let blob = UnsafeRawBufferPointer(
                    start: sqlite3_column_blob(sqlite, 6), count: Int(sqlite3_column_bytes(sqlite, 6)))
                let wellFormed = sums[seriesID, default: RollupSums()].add(
                    count: Int(sqlite3_column_int64(sqlite, 1)), durationMicros: sqlite3_column_int64(sqlite, 2),
                    requestBytes: sqlite3_column_int64(sqlite, 3), responseBytes: sqlite3_column_int64(sqlite, 4),
                    sources: Int(sqlite3_column_int64(sqlite, 5)), latency: blob)
                guard wellFormed else {
                    throw StoreError(.failed, "latency sketch of rollup series \(seriesID) is malformed")
                }
            }
        }
        let labels = try db.cachedStatement(
            sql: """
                SELECT reporter, proxy_id, peer_id, service_id, protocol, response_code, grpc_status, response_flags,
                    paired
                FROM call_series WHERE id = ?
                """)
        var result: [CallAggregate] = []
        for (seriesID, s) in sums where s.count > 0 {
            // The row reads from the statement: the cursor stays alive while it is used.
            let cursor = try Row.fetchCursor(labels, arguments: [seriesID])
            guard let row = try cursor.next() else { continue }
            let requestProtocol = RequestProtocol(rawValue: row["protocol"]) ?? .http
            guard (requestProtocol == .tcp) == tcp else { continue }
            let peer: Int64 = row["peer_id"]
            let grpc: Int = row["grpc_status"]
            result.append(
                CallAggregate(
                    reporter: Reporter(rawValue: row["reporter"]) ?? .source, proxy: dictionaries.workload(row["proxy_id"]),
                    peer: peer == 0 ? nil : dictionaries.workload(peer), service: dictionaries.service(row["service_id"]),
                    requestProtocol: requestProtocol, responseCode: row["response_code"], grpcStatus: grpc < 0 ? nil : grpc,
                    responseFlags: row["response_flags"], paired: row["paired"],
                    latency: s.latency,
                    sources: IngestChannel(rawValue: s.sources), count: s.count, durationMicrosSum: s.durationMicros,
                    requestBytes: s.requestBytes, responseBytes: s.responseBytes))
            withExtendedLifetime(cursor) {}
        }
        return result
    }
}

extension SextantDatabase {
    /// Bytes of the file's pages per table, its indexes included, after folding the WAL into the
    /// file: where the bytes on disk go (the load generator's storage-alone run reports it).
    package func bytesByTable() async throws -> [String: Int64] {
        try await pool.writeWithoutTransaction { db in
            try db.checkpoint(.truncate)
            var out: [String: Int64] = [:]
            let rows = try Row.fetchAll(
                db,
                sql: """
                    SELECT coalesce(m.tbl_name, s.name) AS name, sum(s.pgsize) AS bytes
                    FROM dbstat AS s LEFT JOIN sqlite_master AS m ON m.name = s.name GROUP BY 1
                    """)
            for row in rows { out[row["name"]] = row["bytes"] }
            return out
        }
    }
}

/// One series' rollup rows summed over a window.
struct RollupSums {
    var count = 0
    var durationMicros: Int64 = 0
    var requestBytes: Int64 = 0
    var responseBytes: Int64 = 0
    var sources = 0
    /// Calls per latency sketch index, as parallel arrays while there are few: a series' rows
    /// usually share a handful of indexes, which a linear search finds faster than a hash; past
    /// `linearLimit` distinct indexes they move to `byIndex`.
    private var indexes: [Int] = []
    private var counts: [Int] = []
    private var byIndex: [Int: Int] = [:]
    private static let linearLimit = 24

    /// Adds one row; false when its sketch bytes are malformed.
    mutating func add(
        count: Int, durationMicros: Int64, requestBytes: Int64, responseBytes: Int64, sources: Int,
        latency bytes: UnsafeRawBufferPointer
    ) -> Bool {
        self.count += count
        self.durationMicros += durationMicros
        self.requestBytes += requestBytes
        self.responseBytes += responseBytes
        self.sources |= sources
        return LatencySketch.forEachEncodedCount(bytes) { index, n in
            if let i = indexes.firstIndex(of: index) {
                counts[i] += n
            } else if indexes.count < Self.linearLimit {
                indexes.append(index)
                counts.append(n)
            } else {
                byIndex[index, default: 0] += n
            }
        }
    }

    var latency: LatencySketch {
        var all = byIndex
        all.reserveCapacity(byIndex.count + indexes.count)
        for (index, n) in zip(indexes, counts) { all[index, default: 0] += n }
        return LatencySketch(counts: all, sumMicros: Double(durationMicros))
    }
}

/// The interned identities and services, loaded once per query.
struct Dictionaries {
    private var workloads: [Int64: WorkloadIdentity] = [:]
    private var services: [Int64: ServiceRef] = [:]

    init(_ db: Database) throws {
        for row in try Row.fetchAll(
            db,
            sql: """
                SELECT id, namespace, workload, app, version, canonical_service, canonical_revision, principal,
                    cluster FROM workloads
                """)
        {
            workloads[row["id"]] = WorkloadIdentity(
                namespace: row["namespace"], workload: row["workload"], app: row["app"], version: row["version"],
                canonicalService: row["canonical_service"], canonicalRevision: row["canonical_revision"],
                principal: row["principal"], cluster: row["cluster"])
        }
        for row in try Row.fetchAll(db, sql: "SELECT id, host, name, namespace FROM services") {
            services[row["id"]] = ServiceRef(host: row["host"], name: row["name"], namespace: row["namespace"])
        }
    }

    func workload(_ id: Int64) -> WorkloadIdentity { workloads[id] ?? .unknown }
    func service(_ id: Int64) -> ServiceRef { services[id] ?? .unknown }
    func knows(workload id: Int64) -> Bool { workloads[id] != nil }
    func knows(service id: Int64) -> Bool { services[id] != nil }
}

extension SextantDatabase {
    private static func rawConnectionAggregates(
        _ db: Database, _ dictionaries: Dictionaries, _ fromMicros: Int64, _ toMicros: Int64
    ) throws -> [CallAggregate] {
        let rows = try Row.fetchCursor(
            db,
            sql: """
                SELECT reporter, proxy_id, peer_id, service_id, response_flags, paired, latency_bucket, sources,
                    count(*) AS count, sum(duration_us) AS duration_us, sum(received_bytes) AS received_bytes,
                    sum(sent_bytes) AS sent_bytes
                FROM tcp_connections WHERE ts_us >= ? AND ts_us < ?
                GROUP BY reporter, proxy_id, peer_id, service_id, response_flags, paired, latency_bucket, sources
                """, arguments: [fromMicros, toMicros])
        var result: [CallAggregate] = []
        while let row = try rows.next() {
            result.append(
                CallAggregate(
                    reporter: Reporter(rawValue: row["reporter"]) ?? .source, proxy: dictionaries.workload(row["proxy_id"]),
                    peer: (row["peer_id"] as Int64?).map(dictionaries.workload),
                    service: dictionaries.service(row["service_id"]), requestProtocol: .tcp, responseCode: 0,
                    grpcStatus: nil, responseFlags: row["response_flags"], paired: row["paired"],
                    latency: LatencySketch(
                        index: row["latency_bucket"], count: row["count"], sumMicros: Double(row["duration_us"] as Int64)),
                    sources: IngestChannel(rawValue: row["sources"]), count: row["count"], durationMicrosSum: row["duration_us"],
                    requestBytes: row["received_bytes"], responseBytes: row["sent_bytes"]))
        }
        return result
    }

    /// Application log records, newest first.
    package func logs(service: String?, traceID: String?, minSeverity: Int, fromMicros: Int64, toMicros: Int64,
        limit: Int) async throws -> [LogRecord]
    {
        try await pool.read { db in
            var sql = "SELECT ts_us, service, severity_number, severity_text, body, trace_id, span_id, attributes FROM logs WHERE ts_us >= ? AND ts_us < ? AND severity_number >= ?"
            var arguments: StatementArguments = [fromMicros, toMicros, minSeverity]
            if let service {
                sql += " AND service = ?"
                _ = arguments.append(contentsOf: [service])
            }
            if let traceID {
                sql += " AND trace_id = ?"
                _ = arguments.append(contentsOf: [traceID])
            }
            sql += " ORDER BY ts_us DESC LIMIT ?"
            _ = arguments.append(contentsOf: [limit])
            return try Row.fetchAll(db, sql: sql, arguments: arguments).map { row in
                LogRecord(
                    timeMicros: row["ts_us"], service: row["service"], severityNumber: row["severity_number"],
                    severityText: row["severity_text"], body: row["body"], traceID: row["trace_id"],
                    spanID: row["span_id"], attributes: SpanJSON.decodeObject(row["attributes"]).dictionary)
            }
        }
    }
}
