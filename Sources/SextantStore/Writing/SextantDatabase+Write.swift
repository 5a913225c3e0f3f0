import GRDB
package import SextantModel

/// What one committed write did.
package struct WriteSummary: Sendable, Hashable {
    package var spansStored = 0
    package var spansDuplicate = 0
    package var requestsStored = 0
    /// Reports merged into a call already stored for the same proxy (another channel, or a resend).
    package var requestsMerged = 0
    /// Calls matched with the other proxy's report of them.
    package var requestsPaired = 0
    package var connectionsStored = 0
    package var connectionsPaired = 0
    package var logsStored = 0
    package var metricsStored = 0
    /// Metric points refused because their metric already has the maximum number of series, or
    /// because their value is not a number.
    package var metricsDropped = 0
    /// Of `metricsDropped`, the points refused for the series cap: their indices in the batch's
    /// `metrics` (filled for one batch only, never added up).
    package var seriesLimitedPoints: [Int] = []

    package init() {}

    package mutating func add(_ other: WriteSummary) {
        spansStored += other.spansStored
        spansDuplicate += other.spansDuplicate
        requestsStored += other.requestsStored
        requestsMerged += other.requestsMerged
        requestsPaired += other.requestsPaired
        connectionsStored += other.connectionsStored
        connectionsPaired += other.connectionsPaired
        logsStored += other.logsStored
        metricsStored += other.metricsStored
        metricsDropped += other.metricsDropped
    }
}

extension SextantDatabase {
    /// Stores batches in one transaction; returns once it is committed.
    package func write(_ batches: [IngestBatch]) async throws -> WriteSummary {
        var total = WriteSummary()
        for summary in try await writeEach(batches.map(PreparedBatch.init)) { total.add(summary) }
        return total
    }

    /// Stores batches in one transaction; returns what each batch did once it is committed.
    package func writeEach(_ batches: [IngestBatch]) async throws -> [WriteSummary] {
        try await writeEach(batches.map(PreparedBatch.init))
    }

    /// Stores prepared batches in one transaction; returns what each batch did once it is committed.
    /// - Parameter busy: told how long the transaction took, from its start to the end of its
    ///   commit (or rollback), whether it succeeded or not.
    package func writeEach(
        _ batches: [PreparedBatch], busy: (@Sendable (Duration) -> Void)? = nil
    ) async throws -> [WriteSummary] {
        do {
            return try await pool.writeWithoutTransaction { db in
                let start = ContinuousClock.now
                defer { busy?(start.duration(to: .now)) }
                var summaries: [WriteSummary] = []
                // As `DatabaseWriter.write` does, with the commit inside the time measured.
                try db.inTransaction {
                    summaries = try self.store(batches, db)
                    return .commit
                }
                return summaries
            }
        } catch {
            cache.reset()
            metricCache.reset()
            callSeriesCache.reset()
            // The failed commit's spans may come again, and its block was never written.
            recentSpans.withLock { $0.removeAll() }
            try? loadSpanBlockIndex()
            throw error
        }
    }

    /// The statements of one write transaction: nothing but look-ups and inserts of prepared values.
    private func store(_ batches: [PreparedBatch], _ db: Database) throws -> [WriteSummary] {
        var summaries: [WriteSummary] = []
        summaries.reserveCapacity(batches.count)
        var rollups = RollupDeltas()
        var blockSpans: [Span] = []
        for batch in batches {
            var summary = WriteSummary()
            recentSpans.withLock { recent in
                for (span, key) in zip(batch.spans, batch.spanKeys) {
                    if recent.insert(key) {
                        blockSpans.append(span)
                        summary.spansStored += 1
                    } else {
                        summary.spansDuplicate += 1
                    }
                }
            }
            for request in batch.requests {
                try upsert(request: request, db, summary: &summary, rollups: &rollups)
            }
            for connection in batch.connections {
                try upsert(connection: connection, db, summary: &summary, rollups: &rollups)
            }
            for log in batch.logs {
                try Self.insert(log: log, db)
                summary.logsStored += 1
            }
            for (index, point) in batch.metrics.enumerated() {
                if try !insert(metric: point, db, summary: &summary) {
                    summary.seriesLimitedPoints.append(index)
                }
            }
            summaries.append(summary)
        }
        try storeBlock(of: blockSpans, db)
        try rollups.apply(db, series: callSeriesCache)
        return summaries
    }

    private func upsert(
        request r: PreparedRequest, _ db: Database, summary: inout WriteSummary, rollups: inout RollupDeltas
    ) throws {
        let proxyID = try cache.workloadID(r.proxy, db)
        let serviceID = try cache.serviceID(r.service, db)
        var peerID = try r.peer.map { try cache.workloadID($0, db) }
        if peerID == nil, r.reporter == .source, let address = r.remoteAddress {
            peerID = try Int64.fetchOne(
                db.cachedStatement(sql: "SELECT workload_id FROM endpoints WHERE address = ?"), arguments: [address])
        }
        let key = CallKey.make(request: r, proxyID: proxyID, serviceID: serviceID)
        let before = try Row.fetchOne(
            db.cachedStatement(sql: "SELECT \(CallSample.columns) FROM requests WHERE call_key = ?"), arguments: [key]
        ).map { CallSample(row: $0) }
        let known = before != nil
        let row = try Row.fetchOne(
            db.cachedStatement(
                sql: """
                    INSERT INTO requests (call_key, ts_us, reporter, proxy_id, peer_id, service_id, protocol,
                        response_code, grpc_status, response_flags, security_policy, duration_us, latency_bucket,
                        request_bytes, response_bytes, request_id, trace_id, span_id, parent_span_id,
                        local_addr, remote_addr, sources)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (call_key) DO UPDATE SET
                        sources = sources | excluded.sources,
                        peer_id = coalesce(peer_id, excluded.peer_id),
                        trace_id = coalesce(trace_id, excluded.trace_id),
                        span_id = coalesce(span_id, excluded.span_id),
                        parent_span_id = coalesce(parent_span_id, excluded.parent_span_id),
                        local_addr = coalesce(local_addr, excluded.local_addr),
                        remote_addr = coalesce(remote_addr, excluded.remote_addr)
                    RETURNING id, paired, trace_id, span_id, parent_span_id, local_addr, remote_addr,
                        \(CallSample.columns)
                    """),
            arguments: [
                key, r.startMicros, r.reporter.rawValue, proxyID, peerID, serviceID, r.requestProtocol,
                r.responseCode, r.grpcStatus, r.responseFlags, r.securityPolicy, r.durationMicros, r.latencyBucket,
                r.requestBytes, r.responseBytes, r.requestID, r.traceID, r.spanID, r.parentSpanID, r.localAddress,
                r.remoteAddress, r.sources,
            ])!
        let rowID: Int64 = row["id"]
        // The row as stored now, returned by the upsert itself.
        let after = CallSample(row: row, offset: 7)
        if let before {
            rollups.move(from: before, to: after, placement: r.placement)
        } else {
            rollups.add(after, sign: 1, placement: r.placement)
        }
        if !known {
            summary.requestsStored += 1
        } else {
            summary.requestsMerged += 1
        }
        if r.reporter == .destination, let address: String = row["local_addr"] {
            try Self.learnEndpoint(address, workloadID: proxyID, atMicros: r.startMicros, db)
        }
        guard row["paired"] == false else { return }
        let stored = StoredCall(
            id: rowID, reporter: r.reporter, proxyID: proxyID, serviceID: serviceID, startMicros: r.startMicros,
            requestID: r.requestID, traceID: row["trace_id"], spanID: row["span_id"],
            parentSpanID: row["parent_span_id"], localAddress: row["local_addr"], remoteAddress: row["remote_addr"])
        if try pair(stored, after, db, rollups: &rollups) { summary.requestsPaired += 1 }
    }
}

extension SextantDatabase {
    /// Records that `address` is where a workload answers (from an inbound report's local address).
    static func learnEndpoint(_ address: String, workloadID: Int64, atMicros: Int64, _ db: Database) throws {
        try db.cachedStatement(
            sql: """
                INSERT INTO endpoints (address, workload_id, last_seen_us) VALUES (?, ?, ?)
                ON CONFLICT (address) DO UPDATE SET workload_id = excluded.workload_id,
                    last_seen_us = max(last_seen_us, excluded.last_seen_us)
                """
        ).execute(arguments: [address, workloadID, atMicros])
    }
}

/// The fields of a stored call that pairing needs.
struct StoredCall {
    var id: Int64
    var reporter: Reporter
    var proxyID: Int64
    var serviceID: Int64
    var startMicros: Int64
    var requestID: String?
    var traceID: TraceID?
    var spanID: SpanID?
    var parentSpanID: SpanID?
    var localAddress: String?
    var remoteAddress: String?
}

extension SextantDatabase {
    /// Finds the other proxy's report of the same call and links the two: the client span's child
    /// server span (same trace, parent = client span id), or the same `x-request-id` for the same
    /// service (and, when both sides know it, the address the caller connected to). Each side then
    /// names the other's workload.
    /// - Parameter sample: the call as stored now.
    func pair(_ call: StoredCall, _ sample: CallSample, _ db: Database, rollups: inout RollupDeltas) throws -> Bool {
        let other: Reporter = call.reporter == .source ? .destination : .source
        var match: Row?
        if let trace = call.traceID {
            if call.reporter == .source, let span = call.spanID {
                match = try Row.fetchOne(
                    db.cachedStatement(
                        sql: """
                            SELECT id, proxy_id, \(CallSample.columns) FROM requests WHERE trace_id = ? AND parent_span_id = ?
                                AND reporter = ? AND paired = 0 AND id != ? LIMIT 1
                            """), arguments: [trace, span, other.rawValue, call.id])
            } else if call.reporter == .destination, let parent = call.parentSpanID {
                match = try Row.fetchOne(
                    db.cachedStatement(
                        sql: """
                            SELECT id, proxy_id, \(CallSample.columns) FROM requests WHERE trace_id = ? AND span_id = ?
                                AND reporter = ? AND paired = 0 AND id != ? LIMIT 1
                            """), arguments: [trace, parent, other.rawValue, call.id])
            }
        }
        if match == nil, let requestID = call.requestID {
            // The inbound side's local address is the address the caller connected to.
            let outboundTarget = call.reporter == .source ? call.remoteAddress : call.localAddress
            let sql =
                call.reporter == .source
                ? """
                SELECT id, proxy_id, \(CallSample.columns) FROM requests WHERE request_id = ? AND service_id = ? AND reporter = ?
                    AND paired = 0 AND id != ? AND proxy_id != ?
                    AND (? IS NULL OR local_addr IS NULL OR local_addr = ?)
                ORDER BY abs(ts_us - ?) LIMIT 1
                """
                : """
                SELECT id, proxy_id, \(CallSample.columns) FROM requests WHERE request_id = ? AND service_id = ? AND reporter = ?
                    AND paired = 0 AND id != ? AND proxy_id != ?
                    AND (? IS NULL OR remote_addr IS NULL OR remote_addr = ?)
                ORDER BY abs(ts_us - ?) LIMIT 1
                """
            match = try Row.fetchOne(
                db.cachedStatement(sql: sql),
                arguments: [
                    requestID, call.serviceID, other.rawValue, call.id, call.proxyID, outboundTarget, outboundTarget,
                    call.startMicros,
                ])
        }
        guard let match else { return false }
        let otherID: Int64 = match["id"]
        let otherProxy: Int64 = match["proxy_id"]
        let otherSample = CallSample(row: match, offset: 2)
        let link = try db.cachedStatement(sql: "UPDATE requests SET paired = 1, peer_id = ? WHERE id = ?")
        try link.execute(arguments: [otherProxy, call.id])
        try link.execute(arguments: [call.proxyID, otherID])
        // Both rows as the update leaves them: paired, each naming the other's proxy.
        rollups.move(from: sample, to: sample.paired(with: otherProxy))
        rollups.move(from: otherSample, to: otherSample.paired(with: call.proxyID))
        return true
    }
}

/// The identity of one call as one proxy saw it, the same whichever channel reported it.
enum CallKey {
    static func make(request r: PreparedRequest, proxyID: Int64, serviceID: Int64) -> Int64 {
        var hash = FNV1a()
        hash.add(r.reporter.rawValue)
        hash.add(proxyID)
        if let requestID = r.requestID {
            // Spans carry µs, access logs ms: both start at the same millisecond.
            hash.add(requestID)
            hash.add(serviceID)
            hash.add(r.startMicros / 1000)
        } else if let trace = r.traceID, let span = r.spanID {
            hash.add(trace)
            hash.add(span)
        } else {
            hash.add(serviceID)
            hash.add(r.startMicros)
            hash.add(r.durationMicros)
            hash.add(r.localAddress ?? "")
            hash.add(r.remoteAddress ?? "")
            hash.add(r.responseCode)
        }
        return Int64(bitPattern: hash.value)
    }
}

struct FNV1a {
    private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325

    mutating func add(_ s: String) {
        for byte in s.utf8 { mix(byte) }
        mix(0xFF)
    }

    mutating func add(_ n: some FixedWidthInteger) {
        var v = UInt64(truncatingIfNeeded: n)
        for _ in 0..<8 {
            mix(UInt8(truncatingIfNeeded: v))
            v >>= 8
        }
    }

    private mutating func mix(_ byte: UInt8) {
        value ^= UInt64(byte)
        value = value &* 0x100_0000_01b3
    }
}
