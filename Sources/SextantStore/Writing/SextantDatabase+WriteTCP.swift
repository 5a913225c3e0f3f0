import GRDB
import SextantModel

extension SextantDatabase {
    /// Stores a TCP connection report and pairs it with the other proxy's report of the same
    /// connection: the caller's `upstream_host`/`upstream_local_address` are the callee's
    /// `downstream_local_address`/`downstream_remote_address`.
    func upsert(
        connection prepared: PreparedConnection, _ db: Database, summary: inout WriteSummary,
        rollups: inout RollupDeltas, counters: inout UnsettledCounters?, atMicros now: Int64
    ) throws {
        let c = prepared.connection
        let proxyID = try cache.workloadID(c.proxy, db)
        let serviceID = try cache.serviceID(c.service, db)
        var peerID = try c.peer.map { try cache.workloadID($0, db) }
        if peerID == nil, c.reporter == .source, let address = c.remoteAddress {
            peerID = try Int64.fetchOne(
                db.cachedStatement(sql: "SELECT workload_id FROM endpoints WHERE address = ?"), arguments: [address])
        }
        var hash = FNV1a()
        hash.add(c.reporter.rawValue)
        hash.add(proxyID)
        // ALS carries µs, JSON access logs ms: both start at the same millisecond.
        hash.add(c.startMicros / 1000)
        hash.add(c.localAddress ?? "")
        hash.add(c.remoteAddress ?? "")
        let key = Int64(bitPattern: hash.value)
        if let known = try Int64.fetchOne(
            db.cachedStatement(sql: "SELECT id FROM tcp_connections WHERE conn_key = ?"), arguments: [key])
        {
            try moving(connections: [known], db, rollups: &rollups, counters: &counters) {
                try db.cachedStatement(sql: "UPDATE tcp_connections SET sources = sources | ? WHERE id = ?")
                    .execute(arguments: [c.channel.rawValue, known])
            }
            return
        }
        try db.cachedStatement(
            sql: """
                INSERT INTO tcp_connections (conn_key, ts_us, reporter, proxy_id, peer_id, service_id, duration_us,
                    latency_bucket, received_bytes, sent_bytes, response_flags, security_policy, local_addr,
                    remote_addr, sources)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """
        ).execute(arguments: [
            key, c.startMicros, c.reporter.rawValue, proxyID, peerID, serviceID, c.durationMicros,
            prepared.latencyBucket, c.receivedBytes, c.sentBytes, c.responseFlags,
            c.securityPolicy, c.localAddress, c.remoteAddress, c.channel.rawValue,
        ])
        let rowID = db.lastInsertedRowID
        summary.connectionsStored += 1
        if let stored = try CallSample.fetch(connectionID: rowID, db) {
            rollups.add(stored, sign: 1, placement: prepared.placement)
            counters?.added(stored, row: rowID, connection: true, placement: prepared.placement, atMicros: now)
        }
        if c.reporter == .destination, let address = c.localAddress {
            try Self.learnEndpoint(address, workloadID: proxyID, atMicros: c.startMicros, db)
        }
        guard let local = c.localAddress, let remote = c.remoteAddress else { return }
        let sql =
            c.reporter == .source
            ? "SELECT id, proxy_id FROM tcp_connections WHERE local_addr = ? AND remote_addr = ? AND reporter = 1 AND paired = 0 AND id != ? ORDER BY abs(ts_us - ?) LIMIT 1"
            : "SELECT id, proxy_id FROM tcp_connections WHERE remote_addr = ? AND local_addr = ? AND reporter = 0 AND paired = 0 AND id != ? ORDER BY abs(ts_us - ?) LIMIT 1"
        guard
            let match = try Row.fetchOne(
                db.cachedStatement(sql: sql), arguments: [c.reporter == .source ? remote : local,
                    c.reporter == .source ? local : remote, rowID, c.startMicros])
        else { return }
        let otherID: Int64 = match["id"]
        try moving(connections: [rowID, otherID], db, rollups: &rollups, counters: &counters) {
            let link = try db.cachedStatement(sql: "UPDATE tcp_connections SET paired = 1, peer_id = ? WHERE id = ?")
            try link.execute(arguments: [match["proxy_id"] as Int64, rowID])
            try link.execute(arguments: [proxyID, otherID])
        }
        summary.connectionsPaired += 1
    }

    /// Runs `change` on stored connections and moves them between rollup series accordingly.
    private func moving(
        connections ids: [Int64], _ db: Database, rollups: inout RollupDeltas, counters: inout UnsettledCounters?,
        _ change: () throws -> Void
    ) throws {
        let before = try ids.map { try CallSample.fetch(connectionID: $0, db) }
        try change()
        for (id, old) in zip(ids, before) {
            if let old, let new = try CallSample.fetch(connectionID: id, db) {
                rollups.move(from: old, to: new)
                counters?.moved(from: old, to: new, row: id, connection: true)
            }
        }
    }

    static func insert(log: PreparedLog, _ db: Database) throws {
        try db.cachedStatement(
            sql: """
                INSERT INTO logs (ts_us, service, severity_number, severity_text, body, trace_id, span_id, attributes)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """
        ).execute(arguments: [
            log.timeMicros, log.service, log.severityNumber, log.severityText, log.body, log.traceID, log.spanID,
            log.attributes,
        ])
    }
}
