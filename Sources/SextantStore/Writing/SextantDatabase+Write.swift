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
                var metrics = MetricWrites()
                var appendID: Int64?
                var seriesBlock: Int64?
                var flushed = (samples: 0, appends: 0)
                // The index leaves its lock for the transaction and goes back only once the
                // commit has succeeded; after a failure the next write rebuilds it from the rows.
                var calls = try self.callIndex.withLock { $0.take() } ?? CallIndex.rebuilt(db, atMicros: self.clock.nowMicros)
                // Likewise the rollup changes not yet written, folded in again from the blocks after a failure.
                var rollups = try self.pendingRollups.withLock { $0.take() } ?? PendingRollups.replayed(db)
                // And Istio's counters not yet settled.
                var counters = self.countsIstioSeries ? try self.takeUnsettledCounters(db, atMicros: self.clock.nowMicros) : nil
                var settlement: CounterSettlement?
                // As `DatabaseWriter.write` does, with the commit inside the time measured.
                try db.inTransaction {
                    summaries = try self.store(
                        batches, db, calls: &calls, rollups: &rollups, metrics: &metrics, counters: &counters)
                    if counters != nil { settlement = try self.settle(&counters!, db, atMicros: self.clock.nowMicros) }
                    seriesBlock = try self.storeSeries(metrics, db)
                    appendID = try self.storeAppend(metrics, db)
                    if self.metricHead.isFlushDue { flushed = try self.flushMetricHeadIfRoom(db) }
                    return .commit
                }
                self.callIndex.withLock { $0 = calls }
                self.pendingRollups.withLock { $0 = rollups }
                if let counters {
                    self.applySettlement(settlement, unsettled: counters)
                    self.unsettledCounters.withLock { $0 = counters }
                }
                // The head takes the commit only now: a failed one leaves it as it was.
                self.metricHead.flushed(flushed)
                self.metricHead.apply(
                    newSeries: metrics.newSeries, seriesBlock: seriesBlock, samples: metrics.append.samples, appendID: appendID)
                return summaries
            }
        } catch {
            resetAfterFailure()
            // The failed commit's spans may come again, and its block was never written.
            recentSpans.withLock { $0.removeAll() }
            try? loadSpanBlockIndex()
            throw error
        }
    }

    /// The statements of one write transaction: nothing but look-ups and inserts of prepared values.
    private func store(
        _ batches: [PreparedBatch], _ db: Database, calls: inout CallIndex, rollups pending: inout PendingRollups,
        metrics: inout MetricWrites, counters: inout UnsettledCounters?
    ) throws -> [WriteSummary] {
        let now = clock.nowMicros
        var summaries: [WriteSummary] = []
        summaries.reserveCapacity(batches.count)
        // TCP connections' rollups are written with them; calls' wait in `pending`.
        var rollups = RollupDeltas()
        // The index moves into the transaction's writes: one owner, so it is changed in place, not
        // copied. (What it leaves behind is an empty index shared by every commit, made once.)
        var callWrites = CallWrites(index: CallIndex.placeholder, expecting: batches.reduce(0) { $0 + $1.requests.count })
        swap(&callWrites.index, &calls)
        // Another process (`sextant import`) may have stored calls since: new ids follow theirs.
        callWrites.index.rowIDs(after: try Self.largestCallRowID(db))
        // Whose calls and connections Istio's counters take in as well.
        try counters?.catchUp(db, atMicros: now)
        // A batch whose spans are all new goes in as the block its receiver encoded; the spans
        // left of batches that repeated some go in one block built here. The blocks are stored
        // joined, a few hundred spans a row.
        var blocks: [PreparedSpanBlock] = []
        var leftSpans: [Span] = []
        // For each batch, the indices (in block order) of spans stored lately: a resend. All
        // batches at once, right after reading ahead the slots their keys will meet.
        let repeats: [[Int]] = recentSpans.withLock { recent in
            for batch in batches { recent.prefetch(batch.spanKeys) }
            return batches.map { batch in batch.spanKeys.indices.filter { !recent.insert(batch.spanKeys[$0]) } }
        }
        let resolved = try resolve(batches, db, index: &callWrites.index)
        var next = 0
        for (batch, repeated) in zip(batches, repeats) {
            var summary = WriteSummary()
            summary.spansStored = batch.spanKeys.count - repeated.count
            summary.spansDuplicate = repeated.count
            if let block = batch.spanBlock {
                if repeated.isEmpty {
                    blocks.append(block)
                } else {
                    // Rare: the block is read back and the new spans go into the commit's own block.
                    let skip = Set(repeated)
                    for (index, span) in try SpanBlock.decode(block.data).enumerated() where !skip.contains(index) {
                        leftSpans.append(span)
                    }
                }
            }
            // Through a pointer: each report is read where it lies, not copied out with its strings retained.
            try batch.requests.withUnsafeBufferPointer { requests in
                for request in requests.indices {
                    try upsert(
                        request: requests.baseAddress! + request, resolved[next], db, writes: &callWrites, now: now,
                        summary: &summary)
                    next += 1
                }
            }
            for connection in batch.connections {
                try upsert(
                    connection: connection, db, summary: &summary, rollups: &rollups, counters: &counters, atMicros: now)
            }
            for log in batch.logs {
                try Self.insert(log: log, db)
                summary.logsStored += 1
            }
            for (index, point) in batch.metrics.enumerated() {
                if try !insert(metric: point, db, writes: &metrics, summary: &summary) {
                    summary.seriesLimitedPoints.append(index)
                }
            }
            summaries.append(summary)
        }
        calls = try callWrites.store(db, rollups: &pending, counters: &counters, atMicros: now)
        if let left = PreparedSpanBlock(leftSpans) { blocks.append(left) }
        for group in PreparedSpanBlock.grouped(blocks) { try store(group, db) }
        try rollups.apply(db, series: callSeriesCache)
        if pending.isDue || rollupsInEveryCommit { try flushIfRoom(&pending, db) }
        return summaries
    }

    /// Forgets what a failed transaction may have left half-done in memory: ids it looked up or
    /// made (rolled back), and the rollup changes not yet written (folded in again from the blocks).
    private func resetAfterFailure() {
        cache.reset()
        callSeriesCache.reset()
        pendingRollups.withLock { $0 = rollupsInEveryCommit ? PendingRollups() : nil }
        unsettledCounters.withLock { $0 = nil }
        istioCounters.withLock { $0.nextDueMicros = .min }
    }

    /// Writes the call rollups' changes in a savepoint of a commit's transaction. When the disk
    /// (or `--max-db-size`) has no room for them they stay in memory and the commit's records are
    /// still stored: the rollups are written once space is freed.
    private func flushIfRoom(_ pending: inout PendingRollups, _ db: Database) throws {
        do {
            try db.inSavepoint {
                try pending.flush(db, series: callSeriesCache)
                return .commit
            }
        } catch let error as DatabaseError where error.resultCode == .SQLITE_FULL {
            // Series rows made in the savepoint are gone with it.
            callSeriesCache.reset()
        }
    }

    /// Writes the metric head's pending samples into chunks and rollups in a savepoint of a
    /// commit's transaction; with no room on disk they stay pending (their appends hold them).
    /// Returns what the head forgets once the transaction is committed.
    private func flushMetricHeadIfRoom(_ db: Database) throws -> (samples: Int, appends: Int) {
        var done = (samples: 0, appends: 0)
        do {
            try db.inSavepoint {
                done = try metricHead.flush(db)
                return .commit
            }
        } catch let error as DatabaseError where error.resultCode == .SQLITE_FULL {
            return (0, 0)
        }
        return done
    }

    /// Writes the metric head's pending samples into chunks and rollups now (before retention,
    /// at shutdown), so that their appends can go.
    package func flushMetricHead() async throws {
        guard metricHead.hasPending else { return }
        try await pool.writeWithoutTransaction { db in
            var done = (samples: 0, appends: 0)
            try db.inTransaction {
                done = try self.metricHead.flush(db)
                return .commit
            }
            self.metricHead.flushed(done)
        }
    }

    /// Before a read of the call rollups (or retention): writes their changes not yet written, so
    /// that the read sees every committed call. When they cannot be written (a full disk), it
    /// warns and the caller goes on with the rollups as written, without the latest calls.
    func flushRollupsOrWarn() async {
        do {
            try await flushRollups()
        } catch {
            logger.warning(
                "the latest calls' rollups could not be written; reads leave them out until they are",
                metadata: ["error": "\(error)"])
        }
    }

    /// Writes the call rollups' changes not yet written, so that a read of the rollups that
    /// follows sees every committed call (a no-op when there are none).
    package func flushRollups() async throws {
        guard pendingRollups.withLock({ $0?.isPending ?? true }) else { return }
        do {
            try await pool.writeWithoutTransaction { db in
                var rollups = try self.pendingRollups.withLock { $0.take() } ?? PendingRollups.replayed(db)
                try db.inTransaction {
                    try rollups.flush(db, series: self.callSeriesCache)
                    return .commit
                }
                self.pendingRollups.withLock { $0 = rollups }
            }
        } catch {
            resetAfterFailure()
            throw error
        }
    }

    /// The machine's clock, µs since the epoch: for what has no database to ask (migrations).
    package static func nowMicros() -> Int64 {
        WallClock.system.nowMicros
    }

    /// The ids and key of every call report of a commit, in order; and what looking them up in
    /// the index will read, read ahead at once (`CallIndex.prefetch`).
    private func resolve(_ batches: [PreparedBatch], _ db: Database, index: inout CallIndex) throws -> [ResolvedRequest] {
        var resolved: [ResolvedRequest] = []
        var keys: [Int64] = []
        var links: [Int64] = []
        let count = batches.reduce(0) { $0 + $1.requests.count }
        resolved.reserveCapacity(count)
        keys.reserveCapacity(count)
        links.reserveCapacity(count * 4)
        for batch in batches {
            // Through a pointer: each report is read where it lies, not copied out with its strings retained.
            try batch.requests.withUnsafeBufferPointer { requests in
                for r in requests.indices {
                    let proxyID = try cache.workloadID(requests[r].proxy, db)
                    let serviceID = try cache.serviceID(requests[r].service, db)
                    let fields = CallFields(requests.baseAddress! + r)
                    let ids = ResolvedRequest(
                        proxyID: proxyID, serviceID: serviceID, key: CallKey.make(fields, proxyID: proxyID, serviceID: serviceID))
                    resolved.append(ids)
                    keys.append(ids.key)
                    fields.links(serviceID: serviceID) { links.append($0) }
                }
            }
        }
        index.prefetch(keys: keys, links: links)
        return resolved
    }

    /// Takes one call report: merged into the call of the same key if one came lately (another
    /// channel's report, or a resend), else a new call; then paired with the other side's report.
    /// Rows are written once per transaction, at its end (`CallWrites.store`).
    /// - Parameter report: read in place, field by field (see `CallFields`).
    private func upsert(
        request report: UnsafePointer<PreparedRequest>, _ ids: ResolvedRequest, _ db: Database, writes: inout CallWrites,
        now: Int64, summary: inout WriteSummary
    ) throws {
        let (proxyID, serviceID, key) = (ids.proxyID, ids.serviceID, ids.key)
        let reporter = report.pointee.reporter
        var peerID = try report.pointee.peer.map { try cache.workloadID($0, db) }
        if peerID == nil, reporter == .source, let address = report.pointee.remoteAddress {
            peerID = try writes.index.endpoint(address, db)
        }
        var call: OpenCall
        if let known = writes.index.call(forKey: key) {
            call = known.merging(report.pointee, peerID: peerID)
            writes.change(call, placement: report.pointee.placement)
            summary.requestsMerged += 1
        } else {
            call = OpenCall(
                rowID: writes.index.takeRowID(), key: key, report: report.pointee, proxyID: proxyID, serviceID: serviceID,
                peerID: peerID)
            writes.add(call, placement: report.pointee.placement, atMicros: now)
            summary.requestsStored += 1
        }
        if reporter == .destination, let address = report.pointee.localAddress {
            try writes.index.learnEndpoint(address, workloadID: proxyID, atMicros: report.pointee.startMicros, db)
        }
        guard !call.isPaired, let partner = writes.index.partner(of: call) else { return }
        writes.change(call.paired(with: partner), placement: nil)
        writes.change(partner.paired(with: call), placement: nil)
        summary.requestsPaired += 1
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

/// A call report's workload and service ids, and its `CallKey`.
struct ResolvedRequest {
    var proxyID: Int64
    var serviceID: Int64
    var key: Int64
}

/// The fields of a call report that find its call and the other side's: plain values, each read
/// out of the report where it lies (a report passed whole to code the compiler cannot see into
/// would be copied, each of its strings retained).
struct CallFields {
    var reporter: Reporter
    var requestIDHash: UInt64?
    var traceID: TraceID?
    var spanID: SpanID?
    var parentSpanID: SpanID?
    var startMicros: Int64
    var durationMicros: Int64
    var localAddressHash: UInt64?
    var remoteAddressHash: UInt64?
    var responseCode: Int

    init(_ r: UnsafePointer<PreparedRequest>) {
        reporter = r.pointee.reporter
        requestIDHash = r.pointee.requestIDHash
        traceID = r.pointee.traceID
        spanID = r.pointee.spanID
        parentSpanID = r.pointee.parentSpanID
        startMicros = r.pointee.startMicros
        durationMicros = r.pointee.durationMicros
        localAddressHash = r.pointee.localAddressHash
        remoteAddressHash = r.pointee.remoteAddressHash
        responseCode = r.pointee.responseCode
    }

    /// The hashes of the links its call registers and of those its other side registered.
    func links(serviceID: Int64, _ body: (Int64) -> Void) {
        if let traceID {
            if reporter == .source, let spanID {
                body(CallIndex.Link.clientSpan(trace: traceID, span: spanID).hash)
                body(CallIndex.Link.serverParent(trace: traceID, span: spanID).hash)
            } else if reporter == .destination, let parentSpanID {
                body(CallIndex.Link.serverParent(trace: traceID, span: parentSpanID).hash)
                body(CallIndex.Link.clientSpan(trace: traceID, span: parentSpanID).hash)
            }
        }
        if let requestIDHash {
            let other: Reporter = reporter == .source ? .destination : .source
            body(CallIndex.Link.request(id: requestIDHash, serviceID: serviceID, reporter: reporter).hash)
            body(CallIndex.Link.request(id: requestIDHash, serviceID: serviceID, reporter: other).hash)
        }
    }
}

/// The calls one write transaction stores or changes, each written once at its end with its
/// final state: a call first stored and paired in the same transaction is one insert.
struct CallWrites {
    private struct Pending {
        var call: OpenCall
        /// The call as stored before this transaction; nil for a call new in it.
        var before: OpenCall?
        var placement: RollupDeltas.Placement?
    }

    /// The index as the transaction changes it.
    var index: CallIndex
    private var pending: [Pending] = []
    /// Each pending call's place in `pending`, by row id.
    private var positions = Int64Map()

    /// - Parameter expecting: about how many calls the transaction will store or change.
    init(index: CallIndex, expecting: Int = 0) {
        self.index = index
        pending.reserveCapacity(expecting)
        positions = Int64Map(minimumCapacity: expecting)
    }

    /// A new call; `placement`: where its first report falls in the rollups.
    mutating func add(_ call: OpenCall, placement: RollupDeltas.Placement, atMicros now: Int64) {
        positions.updateValue(Int64(pending.count), forKey: call.rowID)
        pending.append(Pending(call: call, before: nil, placement: placement))
        index.insert(call, atMicros: now)
    }

    /// A call as changed by a merged report (`placement`: where the report falls in the rollups)
    /// or a pairing (nil).
    mutating func change(_ call: OpenCall, placement: RollupDeltas.Placement?) {
        let position: Int
        if let known = positions[call.rowID] {
            position = Int(known)
            pending[position].call = call
        } else if let before = index.call(row: call.rowID) {
            position = pending.count
            positions.updateValue(Int64(position), forKey: call.rowID)
            pending.append(Pending(call: call, before: before, placement: placement))
        } else {
            return
        }
        index.update(call)
    }

    /// Writes every new and changed call, as one block, and moves the rollups and examples with
    /// them; returns the index as it is once they are stored.
    consuming func store(
        _ db: Database, rollups: inout PendingRollups, counters: inout UnsettledCounters?, atMicros now: Int64
    ) throws -> CallIndex {
        var examples = ExampleDeltas()
        var entries: [CallBlock.Entry] = []
        entries.reserveCapacity(pending.count)
        var bounds = CallBlockBounds()
        // By index, here and below: each call is read where it lies, not copied out.
        for i in pending.indices {
            // A resend changes nothing: its call's stored version stays the newest.
            if let before = pending[i].before, before == pending[i].call { continue }
            examples.note(pending[i].call)
            let entry = CallBlock.Entry(pending[i].call, before: pending[i].before)
            bounds.add(pending[i].call, isRevision: entry.isRevision)
            entries.append(entry)
        }
        let block = try SextantDatabase.storeCallBlock(entries, bounds: bounds, db)
        rollups.record(block: block) { deltas in
            for i in pending.indices {
                let call = pending[i].call.sample, row = pending[i].call.rowID, placement = pending[i].placement
                if let before = pending[i].before?.sample {
                    deltas.move(from: before, to: call, placement: placement)
                    counters?.moved(from: before, to: call, row: row, connection: false, placement: placement)
                } else {
                    deltas.add(call, sign: 1, placement: placement)
                    counters?.added(call, row: row, connection: false, placement: placement, atMicros: now)
                }
            }
        }
        try examples.apply(db)
        return index
    }
}

extension CallIndex {
    /// The workload answering at `address`, as inbound reports taught it (remembered once read).
    mutating func endpoint(_ address: String, _ db: Database) throws -> Int64? {
        if let known = endpoints[address] { return known.workloadID }
        let found = try Int64.fetchOne(
            db.cachedStatement(sql: "SELECT workload_id FROM endpoints WHERE address = ?"), arguments: [address])
        if let found { remember(address, workloadID: found, seenMicros: .min) }
        return found
    }

    /// Records that `address` is where a workload answers; the row is written when it changes, and
    /// its last-seen time at most once a minute.
    mutating func learnEndpoint(_ address: String, workloadID: Int64, atMicros: Int64, _ db: Database) throws {
        if let known = endpoints[address], known.workloadID == workloadID,
            atMicros < known.seenMicros + Self.endpointRefreshMicros
        {
            return
        }
        try SextantDatabase.learnEndpoint(address, workloadID: workloadID, atMicros: atMicros, db)
        remember(address, workloadID: workloadID, seenMicros: atMicros)
    }
}

/// The identity of one call as one proxy saw it, the same whichever channel reported it.
enum CallKey {
    static func make(_ r: CallFields, proxyID: Int64, serviceID: Int64) -> Int64 {
        make(
            reporter: r.reporter.rawValue, proxyID: proxyID, serviceID: serviceID, requestID: r.requestIDHash,
            traceID: r.traceID, spanID: r.spanID, startMicros: r.startMicros, durationMicros: r.durationMicros,
            localAddress: r.localAddressHash, remoteAddress: r.remoteAddressHash, responseCode: r.responseCode)
    }

    /// The key the call's own fields give: its first report's, unless a merged report brought an
    /// id or address the first one lacked (then the key must be kept beside the call).
    static func derived(_ c: OpenCall) -> Int64 {
        make(
            reporter: c.sample.facts.reporter, proxyID: c.proxyID, serviceID: c.serviceID, requestID: c.requestID,
            traceID: c.traceID, spanID: c.spanID, startMicros: c.sample.startMicros,
            durationMicros: c.sample.durationMicros, localAddress: c.localAddress, remoteAddress: c.remoteAddress,
            responseCode: c.sample.facts.responseCode)
    }

    private static func make(
        reporter: Int, proxyID: Int64, serviceID: Int64, requestID: UInt64?, traceID: TraceID?, spanID: SpanID?,
        startMicros: Int64, durationMicros: Int64, localAddress: UInt64?, remoteAddress: UInt64?, responseCode: Int
    ) -> Int64 {
        var hash = WordHash()
        hash.add(reporter)
        hash.add(proxyID)
        if let requestID {
            // Spans carry µs, access logs ms: both start at the same millisecond.
            hash.add(requestID)
            hash.add(serviceID)
            hash.add(startMicros / 1000)
        } else if let traceID, let spanID {
            hash.add(traceID.high)
            hash.add(traceID.low)
            hash.add(spanID.value)
        } else {
            hash.add(serviceID)
            hash.add(startMicros)
            hash.add(durationMicros)
            hash.add(localAddress ?? 0)
            hash.add(remoteAddress ?? 0)
            hash.add(responseCode)
        }
        return Int64(bitPattern: hash.value)
    }
}

/// A 64-bit hash of a few integers, a word at a time (a multiply and a shift each), then a final
/// mix: the keys of calls and their links, made for every report the writer takes. Only in memory
/// and in call blocks beside calls whose key their fields do not give (which a start reads back).
struct WordHash {
    private var state: UInt64 = 0x9E37_79B9_7F4A_7C15

    mutating func add(_ n: some FixedWidthInteger) {
        state = (state ^ UInt64(truncatingIfNeeded: n)) &* 0xFF51_AFD7_ED55_8CCD
        state ^= state >> 32
    }

    var value: UInt64 {
        var h = state &* 0xC4CE_B9FE_1A85_EC53
        h ^= h >> 33
        return h
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
