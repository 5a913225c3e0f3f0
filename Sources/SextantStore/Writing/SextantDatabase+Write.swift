internal import Foundation
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
                // The index leaves its lock for the transaction and goes back only once the
                // commit has succeeded; after a failure the next write rebuilds it from the rows.
                var calls = try self.callIndex.withLock { $0.take() } ?? CallIndex.rebuilt(db, atMicros: Self.nowMicros())
                // As `DatabaseWriter.write` does, with the commit inside the time measured.
                try db.inTransaction {
                    summaries = try self.store(batches, db, calls: &calls)
                    return .commit
                }
                self.callIndex.withLock { $0 = calls }
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
    private func store(_ batches: [PreparedBatch], _ db: Database, calls: inout CallIndex) throws -> [WriteSummary] {
        let now = Self.nowMicros()
        var summaries: [WriteSummary] = []
        summaries.reserveCapacity(batches.count)
        var rollups = RollupDeltas()
        // A batch whose spans are all new goes in as the block its receiver encoded; the spans
        // left of batches that repeated some go in one block built here.
        var blocks: [PreparedSpanBlock] = []
        var leftSpans: [Span] = []
        for batch in batches {
            var summary = WriteSummary()
            recentSpans.withLock { recent in
                var kept: [Span]?
                for (index, (span, key)) in zip(batch.spans, batch.spanKeys).enumerated() {
                    if recent.insert(key) {
                        kept?.append(span)
                        summary.spansStored += 1
                    } else {
                        if kept == nil { kept = Array(batch.spans[..<index]) }
                        summary.spansDuplicate += 1
                    }
                }
                if let kept {
                    leftSpans += kept
                } else if let block = batch.spanBlock {
                    blocks.append(block)
                }
            }
            for request in batch.requests {
                try upsert(request: request, db, calls: &calls, now: now, summary: &summary, rollups: &rollups)
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
        for block in blocks { try store(block, db) }
        try storeBlock(of: leftSpans, db)
        try rollups.apply(db, series: callSeriesCache)
        return summaries
    }

    /// The writer's clock for the call index, µs since the epoch.
    static func nowMicros() -> Int64 {
        Int64((Date().timeIntervalSince1970 * 1_000_000).rounded())
    }

    /// Stores one call report: merged into the row of the same call if one came lately (another
    /// channel's report, or a resend), else a new row; then paired with the other side's report.
    private func upsert(
        request r: PreparedRequest, _ db: Database, calls: inout CallIndex, now: Int64, summary: inout WriteSummary,
        rollups: inout RollupDeltas
    ) throws {
        let proxyID = try cache.workloadID(r.proxy, db)
        let serviceID = try cache.serviceID(r.service, db)
        var peerID = try r.peer.map { try cache.workloadID($0, db) }
        if peerID == nil, r.reporter == .source, let address = r.remoteAddress {
            peerID = try Int64.fetchOne(
                db.cachedStatement(sql: "SELECT workload_id FROM endpoints WHERE address = ?"), arguments: [address])
        }
        let key = CallKey.make(request: r, proxyID: proxyID, serviceID: serviceID)
        let stored = "id, paired, trace_id, span_id, parent_span_id, local_addr, remote_addr, \(CallSample.columns)"
        var merged: (before: CallSample, row: Row)?
        // The row must still be this call's: retention may have deleted it, and a row id freed at
        // the end of the table is given again.
        if let known = calls.row(forKey: key), let before = try CallSample.fetch(id: known, callKey: key, db) {
            let row = try Row.fetchOne(
                db.cachedStatement(
                    sql: """
                        UPDATE requests SET
                            sources = sources | ?,
                            peer_id = coalesce(peer_id, ?),
                            trace_id = coalesce(trace_id, ?),
                            span_id = coalesce(span_id, ?),
                            parent_span_id = coalesce(parent_span_id, ?),
                            local_addr = coalesce(local_addr, ?),
                            remote_addr = coalesce(remote_addr, ?)
                        WHERE id = ?
                        RETURNING \(stored)
                        """),
                arguments: [
                    r.sources, peerID, r.traceID, r.spanID, r.parentSpanID, r.localAddress, r.remoteAddress, known,
                ])!
            merged = (before, row)
        }
        let row: Row
        if let merged {
            row = merged.row
        } else {
            row = try Row.fetchOne(
                db.cachedStatement(
                    sql: """
                        INSERT INTO requests (call_key, ts_us, reporter, proxy_id, peer_id, service_id, protocol,
                            response_code, grpc_status, response_flags, security_policy, duration_us, latency_bucket,
                            request_bytes, response_bytes, request_id, trace_id, span_id, parent_span_id,
                            local_addr, remote_addr, sources)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                        RETURNING \(stored)
                        """),
                arguments: [
                    key, r.startMicros, r.reporter.rawValue, proxyID, peerID, serviceID, r.requestProtocol,
                    r.responseCode, r.grpcStatus, r.responseFlags, r.securityPolicy, r.durationMicros, r.latencyBucket,
                    r.requestBytes, r.responseBytes, r.requestID, r.traceID, r.spanID, r.parentSpanID, r.localAddress,
                    r.remoteAddress, r.sources,
                ])!
        }
        let rowID: Int64 = row["id"]
        // The row as stored now, returned by the statement itself.
        let after = CallSample(row: row, offset: 7)
        let call = StoredCall(
            id: rowID, reporter: r.reporter, proxyID: proxyID, serviceID: serviceID, startMicros: r.startMicros,
            requestID: r.requestID, traceID: row["trace_id"], spanID: row["span_id"],
            parentSpanID: row["parent_span_id"], localAddress: row["local_addr"], remoteAddress: row["remote_addr"])
        let links = CallIndex.Link.links(
            reporter: r.reporter, serviceID: serviceID, requestID: r.requestID, traceID: call.traceID,
            spanID: call.spanID, parentSpanID: call.parentSpanID)
        if let merged {
            rollups.move(from: merged.before, to: after, placement: r.placement)
            summary.requestsMerged += 1
            calls.addLinks(links, rowID: rowID)
        } else {
            rollups.add(after, sign: 1, placement: r.placement)
            summary.requestsStored += 1
            calls.insert(key: key, rowID: rowID, links: links, atMicros: now)
        }
        if r.reporter == .destination, let address = call.localAddress {
            try Self.learnEndpoint(address, workloadID: proxyID, atMicros: r.startMicros, db)
        }
        guard row["paired"] == false else { return }
        if try pair(call, after, db, calls: calls, rollups: &rollups) { summary.requestsPaired += 1 }
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
    /// Ids as stored: hex text.
    var traceID: String?
    var spanID: String?
    var parentSpanID: String?
    var localAddress: String?
    var remoteAddress: String?
}

extension SextantDatabase {
    /// Finds the other proxy's report of the same call and links the two: the client span's child
    /// server span (same trace, parent = client span id), or the same `x-request-id` for the same
    /// service (and, when both sides know it, the address the caller connected to), the closest in
    /// time. Each side then names the other's workload. Candidates come from the index of recent
    /// calls and are checked against their stored columns.
    /// - Parameter sample: the call as stored now.
    func pair(
        _ call: StoredCall, _ sample: CallSample, _ db: Database, calls: CallIndex, rollups: inout RollupDeltas
    ) throws -> Bool {
        let other: Reporter = call.reporter == .source ? .destination : .source
        let wanted = CallIndex.Link.partnerLinks(
            reporter: call.reporter, serviceID: call.serviceID, requestID: call.requestID, traceID: call.traceID,
            spanID: call.spanID, parentSpanID: call.parentSpanID)
        // Unpaired reports of the other side, not this one.
        func open(_ ids: [Int64]) throws -> [PairCandidate] {
            try PairCandidate.fetch(ids: ids, db).filter { !$0.paired && $0.call.id != call.id && $0.call.reporter == other }
        }
        var match = try open(calls.rows(linkedBy: wanted.spans)).first {
            $0.call.traceID == call.traceID
                && (call.reporter == .source ? $0.call.parentSpanID == call.spanID : $0.call.spanID == call.parentSpanID)
        }
        if match == nil, let requestID = call.requestID {
            // The inbound side's local address is the address the caller connected to.
            let target = call.reporter == .source ? call.remoteAddress : call.localAddress
            match = try open(calls.rows(linkedBy: wanted.requests)).filter {
                let theirs = call.reporter == .source ? $0.call.localAddress : $0.call.remoteAddress
                return $0.call.requestID == requestID && $0.call.serviceID == call.serviceID
                    && $0.call.proxyID != call.proxyID && (target == nil || theirs == nil || theirs == target)
            }.min { abs($0.call.startMicros - call.startMicros) < abs($1.call.startMicros - call.startMicros) }
        }
        guard let match else { return false }
        let link = try db.cachedStatement(sql: "UPDATE requests SET paired = 1, peer_id = ? WHERE id = ?")
        try link.execute(arguments: [match.call.proxyID, call.id])
        try link.execute(arguments: [call.proxyID, match.call.id])
        // Both rows as the update leaves them: paired, each naming the other's proxy.
        rollups.move(from: sample, to: sample.paired(with: match.call.proxyID))
        rollups.move(from: match.sample, to: match.sample.paired(with: call.proxyID))
        return true
    }
}

/// A stored call that may be the other side of one being paired, as its row is now.
struct PairCandidate {
    var call: StoredCall
    var paired: Bool
    var sample: CallSample

    static func fetch(ids: [Int64], _ db: Database) throws -> [PairCandidate] {
        let statement = try db.cachedStatement(
            sql: """
                SELECT id, proxy_id, reporter, paired, service_id, request_id, trace_id, span_id, parent_span_id,
                    local_addr, remote_addr, \(CallSample.columns)
                FROM requests WHERE id = ?
                """)
        return try ids.compactMap { id in
            try Row.fetchOne(statement, arguments: [id]).map { row in
                let sample = CallSample(row: row, offset: 11)
                let call = StoredCall(
                    id: row["id"], reporter: Reporter(rawValue: row["reporter"]) ?? .source, proxyID: row["proxy_id"],
                    serviceID: row["service_id"], startMicros: sample.startMicros, requestID: row["request_id"],
                    traceID: row["trace_id"], spanID: row["span_id"], parentSpanID: row["parent_span_id"],
                    localAddress: row["local_addr"], remoteAddress: row["remote_addr"])
                return PairCandidate(call: call, paired: row["paired"], sample: sample)
            }
        }
    }
}

extension CallIndex {
    /// The index as the newest `capacity` rows give it, each findable from `now` on.
    static func rebuilt(_ db: Database, atMicros now: Int64, capacity: Int = CallIndex().capacity) throws -> CallIndex {
        var index = CallIndex(capacity: capacity)
        let rows = try Row.fetchCursor(
            db,
            sql: """
                SELECT id, call_key, reporter, paired, service_id, request_id, trace_id, span_id, parent_span_id
                FROM (SELECT * FROM requests ORDER BY id DESC LIMIT ?) ORDER BY id
                """, arguments: [capacity])
        while let row = try rows.next() {
            let paired: Bool = row["paired"]
            let links =
                paired
                ? []
                : CallIndex.Link.links(
                    reporter: Reporter(rawValue: row["reporter"]) ?? .source, serviceID: row["service_id"],
                    requestID: row["request_id"], traceID: row["trace_id"], spanID: row["span_id"],
                    parentSpanID: row["parent_span_id"])
            index.insert(key: row["call_key"], rowID: row["id"], links: links, atMicros: now)
        }
        return index
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
