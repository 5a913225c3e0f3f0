import GRDB
package import SextantModel

extension SextantDatabase {
    /// Calls that started in `[from, to)` (µs), grouped by every dimension the graph and the
    /// signals need.
    package func callAggregates(fromMicros: Int64, toMicros: Int64) async throws -> [CallAggregate] {
        try await pool.read { db in
            let dictionaries = try Dictionaries(db)
            let rows = try Row.fetchCursor(
                db,
                sql: """
                    SELECT reporter, proxy_id, peer_id, service_id, protocol, response_code, grpc_status,
                        response_flags, paired, latency_bucket, sources, count(*) AS n, sum(duration_us) AS d,
                        sum(request_bytes) AS qb, sum(response_bytes) AS rb
                    FROM requests WHERE ts_us >= ? AND ts_us < ?
                    GROUP BY reporter, proxy_id, peer_id, service_id, protocol, response_code, grpc_status,
                        response_flags, paired, latency_bucket, sources
                    """, arguments: [fromMicros, toMicros])
            var result: [CallAggregate] = []
            while let row = try rows.next() {
                result.append(
                    CallAggregate(
                        reporter: Reporter(rawValue: row[0]) ?? .source,
                        proxy: dictionaries.workload(row[1]),
                        peer: (row[2] as Int64?).map(dictionaries.workload),
                        service: dictionaries.service(row[3]),
                        requestProtocol: RequestProtocol(rawValue: row[4]) ?? .http,
                        responseCode: row[5], grpcStatus: row[6], responseFlags: row[7], paired: row[8],
                        latencyBucket: row[9], sources: Channel(rawValue: row[10]), count: row[11],
                        durationMicrosSum: row[12], requestBytes: row[13], responseBytes: row[14]))
            }
            return result
        }
    }

    /// Totals of every Istio request series over all stored calls, leaving out calls younger than
    /// `unresolvedBeforeMicros` whose other side is still unknown (the other proxy's report may
    /// still arrive and name it; counting them now would move them between series later).
    package func seriesTotals(unresolvedBeforeMicros cutoff: Int64) async throws -> [SeriesTotals] {
        let bounds = IstioHistogram.bounds
        func buckets(_ column: String, scale: String) -> String {
            bounds.map { "sum(\(column) \(scale) <= \($0))" }.joined(separator: ", ")
        }
        let sql = """
            SELECT reporter, proxy_id, peer_id, service_id, protocol, response_code, grpc_status, response_flags,
                security_policy, count(*), sum(duration_us), sum(request_bytes), sum(response_bytes),
                \(buckets("duration_us", scale: "/ 1000.0")),
                \(buckets("request_bytes", scale: "")),
                \(buckets("response_bytes", scale: ""))
            FROM requests WHERE paired = 1 OR peer_id IS NOT NULL OR ts_us < ?
            GROUP BY reporter, proxy_id, peer_id, service_id, protocol, response_code, grpc_status, response_flags,
                security_policy
            """
        return try await pool.read { db in
            let dictionaries = try Dictionaries(db)
            let rows = try Row.fetchCursor(db, sql: sql, arguments: [cutoff])
            var result: [SeriesTotals] = []
            let n = bounds.count
            while let row = try rows.next() {
                let reporter = Reporter(rawValue: row[0]) ?? .source
                let proxy = dictionaries.workload(row[1])
                let peer = (row[2] as Int64?).map(dictionaries.workload) ?? .unknown
                let first = 13
                result.append(
                    SeriesTotals(
                        reporter: reporter,
                        source: reporter == .source ? proxy : peer,
                        destination: reporter == .source ? peer : proxy,
                        service: dictionaries.service(row[3]),
                        requestProtocol: RequestProtocol(rawValue: row[4]) ?? .http,
                        responseCode: row[5], grpcStatus: row[6], responseFlags: row[7], securityPolicy: row[8],
                        count: row[9], durationMillisSum: Double(row[10] as Int64) / 1000,
                        requestBytesSum: row[11], responseBytesSum: row[12],
                        durationBuckets: (0..<n).map { row[first + $0] },
                        requestBytesBuckets: (0..<n).map { row[first + n + $0] },
                        responseBytesBuckets: (0..<n).map { row[first + 2 * n + $0] }))
            }
            return result
        }
    }

    /// Rows per table, for Sextant's own metrics.
    package func rowCounts() async throws -> (requests: Int, spans: Int) {
        try await pool.read { db in
            (
                try Int.fetchOne(db, sql: "SELECT count(*) FROM requests") ?? 0,
                try Int.fetchOne(db, sql: "SELECT count(*) FROM spans") ?? 0
            )
        }
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
            workloads[row[0]] = WorkloadIdentity(
                namespace: row[1], workload: row[2], app: row[3], version: row[4], canonicalService: row[5],
                canonicalRevision: row[6], principal: row[7], cluster: row[8])
        }
        for row in try Row.fetchAll(db, sql: "SELECT id, host, name, namespace FROM services") {
            services[row[0]] = ServiceRef(host: row[1], name: row[2], namespace: row[3])
        }
    }

    func workload(_ id: Int64) -> WorkloadIdentity { workloads[id] ?? .unknown }
    func service(_ id: Int64) -> ServiceRef { services[id] ?? .unknown }
}

extension SextantDatabase {
    /// TCP connections that started in `[from, to)` (µs), as aggregates with protocol `tcp`:
    /// `count` is connections, `requestBytes` bytes received from the client, `responseBytes` bytes
    /// sent to it.
    package func connectionAggregates(fromMicros: Int64, toMicros: Int64) async throws -> [CallAggregate] {
        try await pool.read { db in
            let dictionaries = try Dictionaries(db)
            let rows = try Row.fetchCursor(
                db,
                sql: """
                    SELECT reporter, proxy_id, peer_id, service_id, response_flags, paired, latency_bucket, sources,
                        count(*), sum(duration_us), sum(received_bytes), sum(sent_bytes)
                    FROM tcp_connections WHERE ts_us >= ? AND ts_us < ?
                    GROUP BY reporter, proxy_id, peer_id, service_id, response_flags, paired, latency_bucket, sources
                    """, arguments: [fromMicros, toMicros])
            var result: [CallAggregate] = []
            while let row = try rows.next() {
                result.append(
                    CallAggregate(
                        reporter: Reporter(rawValue: row[0]) ?? .source, proxy: dictionaries.workload(row[1]),
                        peer: (row[2] as Int64?).map(dictionaries.workload), service: dictionaries.service(row[3]),
                        requestProtocol: .tcp, responseCode: 0, grpcStatus: nil, responseFlags: row[4],
                        paired: row[5], latencyBucket: row[6], sources: Channel(rawValue: row[7]), count: row[8],
                        durationMicrosSum: row[9], requestBytes: row[10], responseBytes: row[11]))
            }
            return result
        }
    }

    /// Totals of every Istio TCP series, with the same hold-back of young unresolved connections
    /// as `seriesTotals`.
    package func tcpSeriesTotals(unresolvedBeforeMicros cutoff: Int64) async throws -> [TCPSeriesTotals] {
        try await pool.read { db in
            let dictionaries = try Dictionaries(db)
            let rows = try Row.fetchCursor(
                db,
                sql: """
                    SELECT reporter, proxy_id, peer_id, service_id, response_flags, security_policy, count(*),
                        sum(received_bytes), sum(sent_bytes)
                    FROM tcp_connections WHERE paired = 1 OR peer_id IS NOT NULL OR ts_us < ?
                    GROUP BY reporter, proxy_id, peer_id, service_id, response_flags, security_policy
                    """, arguments: [cutoff])
            var result: [TCPSeriesTotals] = []
            while let row = try rows.next() {
                let reporter = Reporter(rawValue: row[0]) ?? .source
                let proxy = dictionaries.workload(row[1])
                let peer = (row[2] as Int64?).map(dictionaries.workload) ?? .unknown
                result.append(
                    TCPSeriesTotals(
                        reporter: reporter, source: reporter == .source ? proxy : peer,
                        destination: reporter == .source ? peer : proxy, service: dictionaries.service(row[3]),
                        responseFlags: row[4], securityPolicy: row[5], connections: row[6], receivedBytes: row[7],
                        sentBytes: row[8]))
            }
            return result
        }
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
                    timeMicros: row[0], service: row[1], severityNumber: row[2], severityText: row[3], body: row[4],
                    traceID: row[5], spanID: row[6], attributes: SpanJSON.decodeObject(row[7]))
            }
        }
    }
}
