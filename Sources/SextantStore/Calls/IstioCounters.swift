internal import Foundation
import GRDB
package import SextantModel

/// Istio's counters (`istio_requests_total`, the three request histograms, `istio_tcp_*`) as
/// `/metrics` and `/federate` expose them: kept in memory, current on commit, and never
/// decreasing, whatever retention deletes and across restarts.
///
/// A stored call is not counted at once: the other proxy's report, or another channel's report of
/// the same call, may still come and move it to another series (a known peer, response flags).
/// Each commit's calls wait in `UnsettledCounters`, where such a move is applied, and are counted
/// (*settled*) `grace` after they were first stored. A move that comes later leaves the counters
/// as they are: the call stays counted once, in the series it settled in, where the rollups move
/// it. Settled totals are written to `istio_counters` in the transaction that settles them, with
/// the ids up to which every call and connection is settled; a start (or a failed commit) folds
/// in again the calls stored above those ids.
struct CounterValues: Equatable, Sendable {
    static let boundCount = IstioHistogram.bounds.count

    /// Calls (connections for TCP).
    var count = 0
    var durationMicros: Int64 = 0
    /// Bytes of the requests (received from the client for TCP).
    var requestBytes: Int64 = 0
    /// Bytes of the responses (sent to the client for TCP).
    var responseBytes: Int64 = 0
    /// Calls per bucket of Envoy's bounds, not cumulative: durations, then request sizes, then
    /// response sizes (`boundCount` each; past the last bound only `count` has them).
    var buckets = [Int](repeating: 0, count: 3 * CounterValues.boundCount)

    init() {}

    var isZero: Bool { self == CounterValues() }

    mutating func add(_ s: CallSample, sign: Int, placement: RollupDeltas.Placement?) {
        let measures = s.measures
        let place =
            if let placement, placement.measures == measures { placement } else { RollupDeltas.Placement(measures: measures) }
        count += sign
        durationMicros += Int64(sign) * s.durationMicros
        requestBytes += Int64(sign) * s.requestBytes
        responseBytes += Int64(sign) * s.responseBytes
        if let bound = place.durationBound { buckets[bound] += sign }
        if let bound = place.requestBound { buckets[Self.boundCount + bound] += sign }
        if let bound = place.responseBound { buckets[2 * Self.boundCount + bound] += sign }
    }

    mutating func add(_ other: CounterValues) {
        count += other.count
        durationMicros += other.durationMicros
        requestBytes += other.requestBytes
        responseBytes += other.responseBytes
        for i in buckets.indices { buckets[i] += other.buckets[i] }
    }

    /// The buckets as stored: zigzag varints, in order.
    var encodedBuckets: [UInt8] {
        var writer = ByteWriter()
        for n in buckets { writer.varint(UInt64(bitPattern: Int64((n << 1) ^ (n >> 63)))) }
        return writer.out
    }

    /// Reads `encodedBuckets`.
    mutating func decodeBuckets(_ bytes: [UInt8]) throws {
        var reader = ByteReader(bytes[...])
        for i in buckets.indices {
            let z = try reader.varint()
            buckets[i] = Int(Int64(bitPattern: z >> 1) ^ -Int64(bitPattern: z & 1))
        }
    }

    /// Cumulative counts of one of the three histograms (0 durations, 1 request, 2 response sizes).
    func cumulative(_ part: Int) -> [Int] {
        var running = 0
        return buckets[(part * Self.boundCount)..<((part + 1) * Self.boundCount)].map { running += $0; return running }
    }
}

extension CallFacts {
    /// The Istio series a call is counted in: its labels, whether or not it is paired.
    var counterKey: CallFacts {
        var key = self
        key.paired = false
        return key
    }
}

/// The settled counters: what `/metrics` exposes (read by scrapes, changed by the writer once a
/// settling transaction has committed).
struct SettledCounters {
    var totals: [CallFacts: CounterValues] = [:]
    /// Every call with a row id up to this one is settled (or was folded in by a migration).
    var callMark: Int64 = 0
    /// Likewise for TCP connections.
    var connectionMark: Int64 = 0
    /// When the oldest unsettled change is due, in µs of the writer's clock: `.min` when the
    /// unsettled changes are not known (before the first write, after a failed one), `.max` for none.
    var nextDueMicros: Int64 = .min
    /// The largest call and connection row ids the unsettled counters have met: a scrape that
    /// finds larger ones in the file folds in what another process stored.
    var metCall: Int64 = .max
    var metConnection: Int64 = .max

    /// Loads the settled totals and marks.
    static func load(_ db: Database) throws -> SettledCounters {
        var settled = SettledCounters()
        let rows = try Row.fetchCursor(
            db,
            sql: """
                SELECT reporter, proxy_id, peer_id, service_id, protocol, response_code, grpc_status, response_flags,
                    security_policy, count, duration_us, request_bytes, response_bytes, buckets
                FROM istio_counters
                """)
        while let row = try rows.next() {
            let key = CallFacts(
                reporter: row[0], proxyID: row[1], peerID: row[2], serviceID: row[3], requestProtocol: row[4],
                responseCode: row[5], grpcStatus: row[6], responseFlags: row[7], securityPolicy: row[8], paired: false)
            var values = CounterValues()
            values.count = row[9]
            values.durationMicros = row[10]
            values.requestBytes = row[11]
            values.responseBytes = row[12]
            try values.decodeBuckets([UInt8](row[13] as Data))
            settled.totals[key] = values
        }
        if let marks = try Row.fetchOne(db, sql: "SELECT call_id, connection_id FROM istio_counters_settled") {
            settled.callMark = marks[0]
            settled.connectionMark = marks[1]
        }
        return settled
    }
}

/// What one transaction settles: each series' change and the new marks.
struct CounterSettlement {
    var deltas: [CallFacts: CounterValues] = [:]
    var callMark: Int64?
    var connectionMark: Int64?
}

/// The counters' changes not yet settled, by the second they are due. Owned by the writer: taken
/// for each transaction, put back once it has committed, and folded in again from the stored calls
/// after a failure.
struct UnsettledCounters {
    struct Batch {
        /// When its first call is due, in µs of the writer's clock: a batch takes the calls of
        /// one second.
        var opensMicros: Int64
        /// When it settles: when its last call is due.
        var dueMicros: Int64
        /// The row ids of the calls and connections first stored in it.
        var calls: ClosedRange<Int64>?
        var connections: ClosedRange<Int64>?
        var deltas: [CallFacts: CounterValues] = [:]

        mutating func take(row: Int64, connection: Bool) {
            if connection {
                connections = connections.map { min($0.lowerBound, row)...max($0.upperBound, row) } ?? row...row
            } else {
                calls = calls.map { min($0.lowerBound, row)...max($0.upperBound, row) } ?? row...row
            }
        }

        func holds(row: Int64, connection: Bool) -> Bool {
            (connection ? connections : calls)?.contains(row) ?? false
        }
    }

    let graceMicros: Int64
    private(set) var batches: [Batch] = []
    /// The largest call and connection row ids met: rows above them were stored by another process.
    private(set) var lastCall: Int64
    private(set) var lastConnection: Int64

    init(graceMicros: Int64, lastCall: Int64, lastConnection: Int64) {
        self.graceMicros = graceMicros
        self.lastCall = lastCall
        self.lastConnection = lastConnection
    }

    var nextDueMicros: Int64 { batches.first?.dueMicros ?? .max }

    /// A call (or connection) first stored now: counted once the grace has passed (with the
    /// calls stored in the same second, once the last of them is due).
    mutating func added(
        _ sample: CallSample, row: Int64, connection: Bool, placement: RollupDeltas.Placement? = nil, atMicros now: Int64
    ) {
        let due = now + graceMicros
        if let open = batches.last, due >= open.opensMicros, due - open.opensMicros < 1_000_000 {
            batches[batches.count - 1].dueMicros = max(open.dueMicros, due)
        } else {
            batches.append(Batch(opensMicros: due, dueMicros: due))
        }
        let last = batches.count - 1
        batches[last].take(row: row, connection: connection)
        batches[last].deltas[sample.facts.counterKey, default: CounterValues()].add(sample, sign: 1, placement: placement)
        if connection { lastConnection = max(lastConnection, row) } else { lastCall = max(lastCall, row) }
    }

    /// A stored call changed: moved between series while it is not settled; once it is, the
    /// counters keep it where it settled.
    mutating func moved(
        from old: CallSample, to new: CallSample, row: Int64, connection: Bool, placement: RollupDeltas.Placement? = nil
    ) {
        guard old != new, let i = batches.lastIndex(where: { $0.holds(row: row, connection: connection) }) else { return }
        batches[i].deltas[old.facts.counterKey, default: CounterValues()].add(old, sign: -1, placement: placement)
        batches[i].deltas[new.facts.counterKey, default: CounterValues()].add(new, sign: 1, placement: placement)
    }

    /// Takes the batches due at `now`, their changes summed, with the ids up to which every call
    /// and connection is then settled; nil when none is due.
    mutating func takeDue(atMicros now: Int64) -> CounterSettlement? {
        let n = batches.prefix { $0.dueMicros <= now }.count
        guard n > 0 else { return nil }
        var settlement = CounterSettlement()
        for batch in batches[..<n] {
            for (key, delta) in batch.deltas where !delta.isZero {
                settlement.deltas[key, default: CounterValues()].add(delta)
            }
            if let calls = batch.calls { settlement.callMark = calls.upperBound }
            if let connections = batch.connections { settlement.connectionMark = connections.upperBound }
        }
        batches.removeFirst(n)
        return settlement
    }

    /// Takes in, as first stored now, the calls stored above row `callsAbove` and the connections
    /// above `connectionsAbove`, as they are now: after a start or a failed commit (above the
    /// settled marks), or when another process (`sextant import`) stored some.
    mutating func fold(_ db: Database, callsAbove: Int64, connectionsAbove: Int64, atMicros now: Int64) throws {
        var versions = CallVersions()
        var met = Set<Int64>()
        let blocks = try Row.fetchCursor(
            db, sql: "SELECT data FROM call_blocks WHERE max_call_id > ? ORDER BY id DESC", arguments: [callsAbove])
        while let row = try blocks.next() {
            // Newest block first: the first version of a call met is its newest.
            try CallBlock.decode([UInt8](row[0] as Data)) { entry in
                guard let call = versions.newest(entry), call.rowID > callsAbove, met.insert(call.rowID).inserted else {
                    return
                }
                added(call.sample, row: call.rowID, connection: false, atMicros: now)
            }
        }
        lastCall = max(lastCall, callsAbove)
        let connections = try Row.fetchCursor(
            db, sql: "SELECT id, \(CallSample.connectionColumns) FROM tcp_connections WHERE id > ?",
            arguments: [connectionsAbove])
        while let row = try connections.next() {
            added(CallSample(row: row, offset: 1), row: row[0], connection: true, atMicros: now)
        }
        lastConnection = max(lastConnection, connectionsAbove)
    }

    /// Folds in the rows another process stored since this one last looked (one step down each
    /// table's index per commit).
    mutating func catchUp(_ db: Database, atMicros now: Int64) throws {
        let largestCall = try SextantDatabase.largestCallRowID(db)
        let largestConnection = try SextantDatabase.largestConnectionRowID(db)
        guard largestCall > lastCall || largestConnection > lastConnection else { return }
        try fold(db, callsAbove: lastCall, connectionsAbove: lastConnection, atMicros: now)
    }
}

/// The Istio series' totals as `/metrics` exposes them.
package struct IstioTotals: Sendable {
    package var requests: [SeriesTotals]
    package var connections: [TCPSeriesTotals]

    package init(requests: [SeriesTotals], connections: [TCPSeriesTotals]) {
        self.requests = requests
        self.connections = connections
    }
}

extension SextantDatabase {
    /// Settles what is due in the caller's transaction: writes each changed series' new totals
    /// and the marks. The settled counters in memory take it once the transaction has committed
    /// (`applySettlement`).
    func settle(_ counters: inout UnsettledCounters, _ db: Database, atMicros now: Int64) throws -> CounterSettlement? {
        guard let settlement = counters.takeDue(atMicros: now) else { return nil }
        let current = istioCounters.withLock { $0.totals }
        let upsert = BoundStatement(
            try db.cachedStatement(
                sql: """
                    INSERT OR REPLACE INTO istio_counters (reporter, proxy_id, peer_id, service_id, protocol, response_code,
                        grpc_status, response_flags, security_policy, updated_s, count, duration_us, request_bytes,
                        response_bytes, buckets)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """), db)
        let seconds = RollupDeltas.floorSeconds(micros: now)
        for (key, delta) in settlement.deltas {
            var values = current[key] ?? CounterValues()
            values.add(delta)
            try upsert.run(
                key.reporter, key.proxyID, key.peerID, key.serviceID, key.requestProtocol, key.responseCode,
                key.grpcStatus, key.responseFlags, key.securityPolicy, seconds, values.count, values.durationMicros,
                values.requestBytes, values.responseBytes, values.encodedBuckets)
        }
        let marks = istioCounters.withLock { ($0.callMark, $0.connectionMark) }
        try db.cachedStatement(
            sql: "INSERT OR REPLACE INTO istio_counters_settled (id, call_id, connection_id) VALUES (1, ?, ?)"
        ).execute(arguments: [settlement.callMark ?? marks.0, settlement.connectionMark ?? marks.1])
        return settlement
    }

    /// The largest TCP connection row id stored (0 for none).
    static func largestConnectionRowID(_ db: Database) throws -> Int64 {
        try Int64.fetchOne(db.cachedStatement(sql: "SELECT max(id) FROM tcp_connections")) ?? 0
    }

    /// Takes a committed settlement into the counters `/metrics` reads, with when the next is due
    /// and the rows the unsettled counters have met.
    func applySettlement(_ settlement: CounterSettlement?, unsettled: UnsettledCounters) {
        istioCounters.withLock { settled in
            if let settlement {
                for (key, delta) in settlement.deltas { settled.totals[key, default: CounterValues()].add(delta) }
                if let mark = settlement.callMark { settled.callMark = mark }
                if let mark = settlement.connectionMark { settled.connectionMark = mark }
            }
            settled.nextDueMicros = unsettled.nextDueMicros
            settled.metCall = unsettled.lastCall
            settled.metConnection = unsettled.lastConnection
        }
    }

    /// The unsettled counters for a transaction: the writer's own, or folded in again from the
    /// calls stored above the settled marks.
    func takeUnsettledCounters(_ db: Database, atMicros now: Int64) throws -> UnsettledCounters {
        if let counters = unsettledCounters.withLock({ $0.take() }) { return counters }
        let marks = istioCounters.withLock { ($0.callMark, $0.connectionMark) }
        var counters = UnsettledCounters(
            graceMicros: countingGraceMicros, lastCall: marks.0, lastConnection: marks.1)
        try counters.fold(db, callsAbove: marks.0, connectionsAbove: marks.1, atMicros: now)
        return counters
    }

    /// Settles what is due now when no commit has: a scrape's counters are never older than the
    /// grace, ingest or not; and takes in what another process stored (`sextant import`).
    package func settleIstioCounters(atMicros: Int64? = nil) async throws {
        guard countsIstioSeries else { return }
        let now = atMicros ?? clock.nowMicros
        let known = istioCounters.withLock { ($0.nextDueMicros, $0.metCall, $0.metConnection) }
        if known.0 > now {
            let largest = try await pool.read { db in
                (try Self.largestCallRowID(db), try Self.largestConnectionRowID(db))
            }
            guard largest.0 > known.1 || largest.1 > known.2 else { return }
        }
        do {
            try await pool.writeWithoutTransaction { db in
                var counters = try self.takeUnsettledCounters(db, atMicros: now)
                var settlement: CounterSettlement?
                try db.inTransaction {
                    try counters.catchUp(db, atMicros: now)
                    settlement = try self.settle(&counters, db, atMicros: now)
                    return .commit
                }
                self.applySettlement(settlement, unsettled: counters)
                self.unsettledCounters.withLock { $0 = counters }
            }
        } catch {
            unsettledCounters.withLock { $0 = nil }
            istioCounters.withLock { $0.nextDueMicros = .min }
            throw error
        }
    }

    /// Istio's series as they stand now (calls stored less than the grace ago not yet counted).
    package func istioTotals(atMicros: Int64? = nil) async throws -> IstioTotals {
        let now = atMicros ?? clock.nowMicros
        try await settleIstioCounters(atMicros: now)
        let totals = istioCounters.withLock { $0.totals }
        let names = try await identityNames(for: totals.keys)
        var result = IstioTotals(requests: [], connections: [])
        for (key, values) in totals where values.count > 0 {
            let reporter = Reporter(rawValue: key.reporter) ?? .source
            let proxy = names.workload(key.proxyID)
            let peer = key.peerID == 0 ? WorkloadIdentity.unknown : names.workload(key.peerID)
            let source = reporter == .source ? proxy : peer
            let destination = reporter == .source ? peer : proxy
            let service = names.service(key.serviceID)
            if key.requestProtocol == RequestProtocol.tcp.rawValue {
                result.connections.append(
                    TCPSeriesTotals(
                        reporter: reporter, source: source, destination: destination, service: service,
                        responseFlags: key.responseFlags, securityPolicy: key.securityPolicy, connections: values.count,
                        receivedBytes: values.requestBytes, sentBytes: values.responseBytes))
            } else {
                result.requests.append(
                    SeriesTotals(
                        reporter: reporter, source: source, destination: destination, service: service,
                        requestProtocol: RequestProtocol(rawValue: key.requestProtocol) ?? .http,
                        responseCode: key.responseCode, grpcStatus: key.grpcStatus < 0 ? nil : key.grpcStatus,
                        responseFlags: key.responseFlags, securityPolicy: key.securityPolicy, count: values.count,
                        durationMillisSum: Double(values.durationMicros) / 1000, requestBytesSum: values.requestBytes,
                        responseBytesSum: values.responseBytes, durationBuckets: values.cumulative(0),
                        requestBytesBuckets: values.cumulative(1), responseBytesBuckets: values.cumulative(2)))
            }
        }
        return result
    }

    /// The workloads and services the keys name, read again only when one is not known yet.
    private func identityNames(for keys: some Sequence<CallFacts>) async throws -> Dictionaries {
        if let known = identityNamesCache.withLock({ $0 }),
            keys.allSatisfy({ known.knows(workload: $0.proxyID) && ($0.peerID == 0 || known.knows(workload: $0.peerID))
                && known.knows(service: $0.serviceID) })
        {
            return known
        }
        let fresh = try await pool.read { try Dictionaries($0) }
        identityNamesCache.withLock { $0 = fresh }
        return fresh
    }

    /// Forgets the series that have not grown since `seconds` (a workload long gone), as
    /// retention lets go of their rollups; returns how many went.
    func expireIstioCounters(idleBeforeSeconds seconds: Int64) async throws -> Int {
        guard countsIstioSeries else { return 0 }
        return try await pool.writeWithoutTransaction { db in
            var gone: [CallFacts] = []
            try db.inTransaction {
                let rows = try Row.fetchCursor(
                    db,
                    sql: """
                        DELETE FROM istio_counters WHERE updated_s < ?
                        RETURNING reporter, proxy_id, peer_id, service_id, protocol, response_code, grpc_status,
                            response_flags, security_policy
                        """, arguments: [seconds])
                while let row = try rows.next() {
                    gone.append(
                        CallFacts(
                            reporter: row[0], proxyID: row[1], peerID: row[2], serviceID: row[3],
                            requestProtocol: row[4], responseCode: row[5], grpcStatus: row[6], responseFlags: row[7],
                            securityPolicy: row[8], paired: false))
                }
                return .commit
            }
            // Only once committed; the writer's next settlement starts from what is left.
            self.istioCounters.withLock { settled in
                for key in gone { settled.totals[key] = nil }
            }
            return gone.count
        }
    }
}

extension SextantDatabase {
    /// Migration 0014: the counters of an existing database, from its daily rollups once the
    /// calls a crash left out of them are folded in; every stored call and connection is settled.
    static func seedIstioCounters(_ db: Database) throws {
        var pending = try PendingRollups.replayed(db)
        try pending.flush(db, series: CallSeriesCache())
        let n = CounterValues.boundCount
        let sums = ["d", "q", "r"].flatMap { p in (0..<n).map { "sum(r.\(p)\($0))" } }.joined(separator: ", ")
        let rows = try Row.fetchCursor(
            db,
            sql: """
                SELECT s.reporter, s.proxy_id, s.peer_id, s.service_id, s.protocol, s.response_code, s.grpc_status,
                    s.response_flags, s.security_policy, sum(r.count), sum(r.duration_us), sum(r.request_bytes),
                    sum(r.response_bytes), \(sums)
                FROM call_rollups r JOIN call_series s ON s.id = r.series_id
                WHERE r.tier = 86400
                GROUP BY s.reporter, s.proxy_id, s.peer_id, s.service_id, s.protocol, s.response_code, s.grpc_status,
                    s.response_flags, s.security_policy
                HAVING sum(r.count) > 0
                """)
        let insert = try db.makeStatement(
            sql: """
                INSERT INTO istio_counters (reporter, proxy_id, peer_id, service_id, protocol, response_code, grpc_status,
                    response_flags, security_policy, updated_s, count, duration_us, request_bytes, response_bytes, buckets)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """)
        let now = RollupDeltas.floorSeconds(micros: nowMicros())
        while let row = try rows.next() {
            var values = CounterValues()
            for i in values.buckets.indices { values.buckets[i] = row[13 + i] }
            let labels = (0..<9).map { row[$0] as DatabaseValue }
            let sums = (9..<13).map { row[$0] as DatabaseValue }
            try insert.execute(
                arguments: StatementArguments(labels + [now.databaseValue] + sums + [Data(values.encodedBuckets).databaseValue]))
        }
        try db.execute(
            sql: """
                INSERT INTO istio_counters_settled (id, call_id, connection_id)
                VALUES (1, (SELECT coalesce(max(max_call_id), 0) FROM call_blocks),
                    (SELECT coalesce(max(id), 0) FROM tcp_connections))
                """)
    }
}
