internal import Foundation
import GRDB
package import SextantModel

/// Calls are stored in blocks (`CallBlock`): one `call_blocks` row per commit, holding each call
/// the commit stored or changed as it is after it. Readers take, for each call, the version in
/// the newest block that holds it.
/// What a call block's row says of the calls it changes, beside their data: their time range,
/// the largest row id, how many are new, and their traces.
struct CallBlockBounds {
    var minStart = Int64.max
    var maxStart = Int64.min
    var maxRow = Int64.min
    var fresh: Int64 = 0
    var traces: [TraceID] = []

    /// Takes in a call as the commit leaves it: new, or stored again (`isRevision`).
    mutating func add(_ call: OpenCall, isRevision: Bool) {
        minStart = min(minStart, call.sample.startMicros)
        maxStart = max(maxStart, call.sample.startMicros)
        maxRow = max(maxRow, call.rowID)
        if !isRevision { fresh += 1 }
        if let trace = call.traceID { traces.append(trace) }
    }
}

extension SextantDatabase {
    /// Writes the calls one commit stored or changed as one block; returns its id (nil when there
    /// were none).
    ///
    /// `bounds` has taken in each entry's call as it is after the commit: the block's time range
    /// and trace filter cover every call it changes, relabels included, so that a reader of a
    /// range or of a trace meets their newest labels.
    /// - Parameter rolledUp: whether the rollups hold these calls already (a migration's); else
    ///   the block is listed in `call_blocks_not_rolled_up` until they do.
    @discardableResult
    static func storeCallBlock(
        _ entries: [CallBlock.Entry], bounds: CallBlockBounds, _ db: Database, rolledUp: Bool = false
    ) throws -> Int64? {
        guard !entries.isEmpty else { return nil }
        let insert = BoundStatement(
            try db.cachedStatement(
                sql: """
                    INSERT INTO call_blocks (min_start_us, max_start_us, max_call_id, entry_count, call_count,
                        trace_filter, data)
                    VALUES (?, ?, ?, ?, ?, ?, ?)
                    """), db)
        try insert.run(
            bounds.minStart, bounds.maxStart, bounds.maxRow, Int64(entries.count), bounds.fresh,
            bounds.traces.isEmpty ? nil : TraceFilter(traces: bounds.traces).bytes, CallBlock.encode(entries))
        let id = db.lastInsertedRowID
        if !rolledUp {
            // Once a commit: a statement kept prepared, not parsed again each time.
            try db.cachedStatement(sql: "INSERT INTO call_blocks_not_rolled_up (block_id) VALUES (?)").execute(arguments: [id])
        }
        return id
    }

    /// The largest call row id stored (0 for none): one step down an index.
    static func largestCallRowID(_ db: Database) throws -> Int64 {
        try Int64.fetchOne(db.cachedStatement(sql: "SELECT max(max_call_id) FROM call_blocks")) ?? 0
    }

    /// Every stored call that started in `[from, to)` (µs) as it is now, in no particular order;
    /// only those of `trace` when one is given.
    static func storedCalls(
        _ db: Database, fromMicros: Int64, toMicros: Int64, trace: TraceID? = nil, _ visit: (OpenCall) throws -> Void
    ) throws {
        // Newest block first: the first version of a call met is its newest.
        var versions = CallVersions()
        // A look-up of one trace reads the filters first, and only the blocks they let through.
        let blocks = try Row.fetchCursor(
            db.cachedStatement(
                sql: trace == nil
                    ? "SELECT id, data FROM call_blocks WHERE max_start_us >= ? AND min_start_us < ? ORDER BY id DESC"
                    : "SELECT id, trace_filter FROM call_blocks WHERE max_start_us >= ? AND min_start_us < ? ORDER BY id DESC"),
            arguments: [fromMicros, toMicros])
        let blockData = try db.cachedStatement(sql: "SELECT data FROM call_blocks WHERE id = ?")
        while let row = try blocks.next() {
            let data: Data
            if let trace {
                guard let bytes = row[1] as Data?, let filter = TraceFilter(bytes: [UInt8](bytes)), filter.mayContain(trace),
                    let found = try Data.fetchOne(blockData, arguments: [row[0] as Int64])
                else { continue }
                data = found
            } else {
                data = row[1]
            }
            try CallBlock.decode([UInt8](data)) { entry in
                guard let call = versions.newest(entry),
                    call.sample.startMicros >= fromMicros, call.sample.startMicros < toMicros,
                    trace == nil || call.traceID == trace
                else { return }
                try visit(call)
            }
        }
    }

    /// Deletes up to `limit` blocks whose calls all started before `micros`; the recent-call index
    /// forgets those calls in the same transaction, so none is changed again. Returns how many
    /// blocks and calls went.
    func deleteCalls(before micros: Int64, limit: Int, _ db: Database) throws -> (blocks: Int, calls: Int) {
        let rows = try Row.fetchAll(
            db, sql: "SELECT id, call_count FROM call_blocks WHERE max_start_us < ? LIMIT ?", arguments: [micros, limit])
        guard !rows.isEmpty else { return (0, 0) }
        let ids = rows.map { $0[0] as Int64 }
        let list = ids.map(String.init).joined(separator: ",")
        try db.execute(sql: "DELETE FROM call_blocks WHERE id IN (\(list))")
        try db.execute(sql: "DELETE FROM call_blocks_not_rolled_up WHERE block_id IN (\(list))")
        callIndex.withLock { $0?.forget(startedBefore: micros) }
        return (rows.count, rows.reduce(0) { $0 + ($1[1] as Int) })
    }

    /// Every stored call as it is now, in row order (`sextant call-ids`, tests).
    package func everyCall() async throws -> [StoredCall] {
        try await pool.read { db in
            var calls: [StoredCall] = []
            try Self.storedCalls(db, fromMicros: .min, toMicros: .max) { calls.append(StoredCall($0)) }
            return calls.sorted { $0.rowID < $1.rowID }
        }
    }
}

/// A stored call as the store's own tools list it.
package struct StoredCall: Sendable, Hashable {
    package var rowID: Int64
    package var startMicros: Int64
    package var reporter: Reporter
    package var responseCode: Int
    package var paired: Bool
    /// `TextHash` of its `x-request-id`, if it had one.
    package var requestIDHash: UInt64?
    package var traceID: TraceID?
    package var spanID: SpanID?

    init(_ call: OpenCall) {
        rowID = call.rowID
        startMicros = call.sample.startMicros
        reporter = call.reporter
        responseCode = call.sample.facts.responseCode
        paired = call.isPaired
        requestIDHash = call.requestID
        traceID = call.traceID
        spanID = call.spanID
    }

    /// The `TextHash` a request id is stored as.
    package static func hash(requestID: String) -> UInt64 { TextHash.of(requestID) }
}

extension CallIndex {
    /// The index as the newest `capacity` calls give it, each findable from `now` on.
    static func rebuilt(_ db: Database, atMicros now: Int64, capacity: Int = CallIndex().capacity) throws -> CallIndex {
        var index = CallIndex(capacity: capacity)
        index.rowIDs(after: try SextantDatabase.largestCallRowID(db))
        // Newest blocks first, until they hold `capacity` calls; older versions stepped over.
        var newest: [Int64: OpenCall] = [:]
        var versions = CallVersions()
        let blocks = try Row.fetchCursor(db, sql: "SELECT data FROM call_blocks ORDER BY id DESC")
        while newest.count < capacity, let row = try blocks.next() {
            try CallBlock.decode([UInt8](row[0] as Data)) { entry in
                if let call = versions.newest(entry), newest[call.rowID] == nil { newest[call.rowID] = call }
            }
        }
        for call in newest.values.sorted(by: { $0.rowID < $1.rowID }).suffix(capacity) {
            index.insert(call, atMicros: now)
        }
        return index
    }
}

extension SextantDatabase {
    /// Migration 0011: the rows of the `requests` table, in id order, become call blocks of up
    /// to `blockSize` calls; then the table goes.
    static func moveRequestsIntoCallBlocks(_ db: Database) throws {
        let blockSize = 10_000
        var after: Int64 = .min
        while true {
            let rows = try Row.fetchAll(
                db,
                sql: """
                    SELECT \(CallSample.columns), id, NULL, request_id, trace_id, span_id, parent_span_id,
                        local_addr, remote_addr
                    FROM requests WHERE id > ? ORDER BY id LIMIT ?
                    """, arguments: [after, blockSize])
            guard let last = rows.last else { break }
            after = last[16]
            var bounds = CallBlockBounds()
            let entries: [CallBlock.Entry] = rows.map { row in
                let n = 16
                // The key as this version computes it, so that a resend after the upgrade merges.
                var call = OpenCall(
                    rowID: row[n], key: 0, sample: CallSample(row: row),
                    requestID: (row[n + 2] as String?).map(TextHash.of),
                    localAddress: (row[n + 6] as String?).map(TextHash.of),
                    remoteAddress: (row[n + 7] as String?).map(TextHash.of),
                    traceID: (row[n + 3] as String?).flatMap { TraceID(hex: $0) },
                    spanID: (row[n + 4] as String?).flatMap { SpanID(hex: $0) },
                    parentSpanID: (row[n + 5] as String?).flatMap { SpanID(hex: $0) })
                call.key = CallKey.derived(call)
                bounds.add(call, isRevision: false)
                return .call(call, isRevision: false)
            }
            try storeCallBlock(entries, bounds: bounds, db, rolledUp: true)
        }
        try db.execute(sql: "DROP TABLE requests")
        // Their rollups were written with them.
        try db.execute(sql: "UPDATE rollup_watermark SET call_block_id = (SELECT coalesce(max(id), 0) FROM call_blocks)")
    }
}
