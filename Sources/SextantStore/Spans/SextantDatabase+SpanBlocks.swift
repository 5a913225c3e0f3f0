import Foundation
import GRDB
package import SextantModel

// MARK: - Writing

/// A block ready to store: encoded, with its traces (for its filter) and summary rows. Built
/// without the database, so the compactor builds it outside the write transaction.
struct PreparedSpanBlock: Sendable {
    var count: Int
    var minStart: Int64
    var maxStart: Int64
    /// Its traces, each once per run of spans (a group lists each part's).
    var traces: [TraceID]
    var data: [UInt8]
    var names: [NameKey: NameSummary]

    /// The largest group the writer stores as one row (`grouped`): below the compactor's small
    /// blocks (`SpanBlockCompactor.Configuration.smallSpans`), so that every group is merged.
    static let groupSpans = 500

    var filter: TraceFilter { TraceFilter(traces: traces) }

    init?(_ spans: [Span]) {
        self.init(sorted: SpanBlock.sortedForBlock(spans))
    }

    /// - Parameter sorted: spans in block order (`SpanBlock.sortedForBlock`).
    init?(sorted: [Span]) {
        guard !sorted.isEmpty else { return nil }
        var traces: [TraceID] = []
        var (minStart, maxStart) = (Int64.max, Int64.min)
        var names: [NameKey: NameSummary] = [:]
        // The summaries of the names met lately, looked up first by comparing strings (which the
        // decoder's interning makes one comparison of their storage), then by hashing.
        var recent: [(key: NameKey, summary: NameSummary)] = []
        sorted.withUnsafeBufferPointer { spans in
            for i in spans.indices {
                // Read in place, field by field, as `SpanBlock.encode` does.
                let span = spans.baseAddress! + i
                let (trace, start) = (span.pointee.traceID, span.pointee.startMicros)
                if traces.last != trace { traces.append(trace) }
                minStart = min(minStart, start)
                maxStart = max(maxStart, start)
                let key = NameKey(
                    service: span.pointee.serviceName, name: span.pointee.name,
                    remoteService: span.pointee.remoteEndpoint?.serviceName)
                let (duration, isError) = (span.pointee.durationMicros, span.pointee.isError)
                if let at = recent.firstIndex(where: { $0.key == key }) {
                    recent[at].summary.add(start: start, duration: duration, isError: isError)
                } else if recent.count < 16 {
                    var summary = NameSummary(start: start)
                    summary.add(start: start, duration: duration, isError: isError)
                    recent.append((key, summary))
                } else {
                    names[key, default: NameSummary(start: start)].add(start: start, duration: duration, isError: isError)
                }
            }
        }
        for (key, summary) in recent {
            names[key] = names[key].map { $0.merging(summary) } ?? summary
        }
        self.minStart = minStart
        self.maxStart = maxStart
        self.names = names
        count = sorted.count
        self.traces = traces
        data = SpanBlock.encode(sorted)
    }

    init(count: Int, minStart: Int64, maxStart: Int64, traces: [TraceID], data: [UInt8], names: [NameKey: NameSummary]) {
        self.count = count
        self.minStart = minStart
        self.maxStart = maxStart
        self.traces = traces
        self.data = data
        self.names = names
    }

    /// One commit's blocks (each request's, as its receiver encoded it) as few rows: consecutive
    /// blocks joined into groups (`SpanBlock.group`) of at most `groupSpans` spans, or a larger
    /// block alone. A row costs the writer an insert into two tables and their indexes, and each
    /// summary row another: a group writes one block row and one summary row per service, name
    /// and remote service of all its parts. The compactor merges groups as it merges small blocks.
    static func grouped(_ blocks: [PreparedSpanBlock]) -> [PreparedSpanBlock] {
        var groups: [PreparedSpanBlock] = []
        var parts: [PreparedSpanBlock] = []
        var spans = 0
        func flush() {
            guard !parts.isEmpty else { return }
            groups.append(parts.count == 1 ? parts[0] : PreparedSpanBlock(joining: parts))
            parts.removeAll(keepingCapacity: true)
            spans = 0
        }
        for block in blocks {
            if spans + block.count > groupSpans { flush() }
            parts.append(block)
            spans += block.count
        }
        flush()
        return groups
    }

    private init(joining parts: [PreparedSpanBlock]) {
        count = parts.reduce(0) { $0 + $1.count }
        minStart = parts.lazy.map(\.minStart).min()!
        maxStart = parts.lazy.map(\.maxStart).max()!
        traces = parts.flatMap(\.traces)
        data = SpanBlock.group(parts.map(\.data))
        names = parts[0].names
        for part in parts.dropFirst() {
            names.merge(part.names) { $0.merging($1) }
        }
    }
}

extension SextantDatabase {
    /// Writes a block (or a group of them) with its summary rows and trace filter.
    func store(_ block: PreparedSpanBlock, _ db: Database) throws {
        let filter = block.filter
        try db.cachedStatement(
            sql: """
                INSERT INTO span_blocks (min_start_us, max_start_us, span_count, trace_filter, data)
                VALUES (?, ?, ?, ?, ?)
                """
        ).execute(arguments: [block.minStart, block.maxStart, block.count, Data(filter.bytes), Data(block.data)])
        let blockID = db.lastInsertedRowID
        let insertName = try db.cachedStatement(
            sql: """
                INSERT INTO span_block_names (block_id, service, name, remote_service, min_start_us, max_start_us,
                    max_duration_us, error_count, span_count)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """)
        for (key, summary) in block.names {
            try insertName.execute(arguments: [
                blockID, key.service, key.name, key.remoteService, summary.minStart, summary.maxStart,
                summary.maxDuration, summary.errors, summary.count,
            ])
        }
        spanBlocks.add(.init(id: blockID, minStartMicros: block.minStart, maxStartMicros: block.maxStart, filter: filter))
    }

    /// Reads every block's time range and trace filter into memory (when the database opens).
    func loadSpanBlockIndex() throws {
        let entries = try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT id, min_start_us, max_start_us, trace_filter FROM span_blocks ORDER BY id")
                .compactMap { row -> SpanBlockIndex.Entry? in
                    guard let filter = TraceFilter(bytes: [UInt8](row["trace_filter"] as Data)) else { return nil }
                    return .init(
                        id: row["id"], minStartMicros: row["min_start_us"], maxStartMicros: row["max_start_us"],
                        filter: filter)
                }
        }
        spanBlocks.replaceAll(entries)
    }

    /// Merges small blocks (under `smallSpans`) whose spans all started before `settledBeforeMicros`
    /// into blocks of up to `targetSpans`, oldest first, each span once; returns how many blocks it
    /// replaced. Small commits (a quiet mesh, Envoy's batches of five spans) would otherwise leave
    /// many tiny blocks: each costs a filter to check on every trace look-up and compresses worse
    /// than a large one. A merged block is read and built outside the write transaction, which
    /// only swaps it in, so ingest waits for no decoding or compression.
    package func compactSpanBlocks(
        settledBeforeMicros: Int64, smallSpans: Int = 1000, targetSpans: Int = 20_000
    ) async throws -> Int {
        let candidates = try await pool.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT id, span_count FROM span_blocks WHERE max_start_us < ? AND span_count < ?
                    ORDER BY min_start_us, id LIMIT 10000
                    """, arguments: [settledBeforeMicros, smallSpans]
            ).map { (id: $0[0] as Int64, spans: $0[1] as Int) }
        }
        var groups: [[Int64]] = []
        var group: [Int64] = []
        var spans = 0
        for candidate in candidates {
            if spans + candidate.spans > targetSpans, !group.isEmpty {
                groups.append(group)
                group = []
                spans = 0
            }
            group.append(candidate.id)
            spans += candidate.spans
        }
        if !group.isEmpty { groups.append(group) }
        var replaced = 0
        for ids in groups where ids.count > 1 {
            let list = ids.map(String.init).joined(separator: ",")
            var merger = try await pool.read { db in
                var merger = SpanBlockMerger()
                let rows = try Row.fetchCursor(db, sql: "SELECT id, data FROM span_blocks WHERE id IN (\(list))")
                while let row = try rows.next() {
                    let id: Int64 = row["id"]
                    do {
                        try merger.add([UInt8](row["data"] as Data))
                    } catch {
                        throw StoreError(.failed, "span block \(id) cannot be read: \(error)")
                    }
                }
                return merger
            }
            guard let block = merger.prepared() else { continue }
            do {
                replaced += try await swap(ids, list: list, for: block)
            } catch is CompactionRace {
                continue
            }
            // A merge holds megabytes on whichever thread runs it, whose arena would keep them for
            // the next merge (on another thread, with an arena of its own).
            Malloc.trim()
        }
        return replaced
    }

    /// Replaces blocks `ids` by `block` in one transaction, unless one of them is gone.
    private func swap(_ ids: [Int64], list: String, for block: PreparedSpanBlock) async throws -> Int {
        try await pool.write { db in
            try db.execute(sql: "DELETE FROM span_block_names WHERE block_id IN (\(list))")
            try db.execute(sql: "DELETE FROM span_blocks WHERE id IN (\(list))")
            // Retention may have taken some meanwhile: then their spans are not to come back.
            guard db.changesCount == ids.count else { throw CompactionRace() }
            try self.store(block, db)
            self.spanBlocks.remove(ids: Set(ids))
            return ids.count
        }
    }

    private struct CompactionRace: Error {}

    /// Deletes the blocks whose newest span started before `cutoffMicros`, at most `limit`;
    /// returns how many it deleted.
    func deleteSpanBlocks(before cutoffMicros: Int64, limit: Int, _ db: Database) throws -> Int {
        let ids = try Int64.fetchSet(
            db, sql: "SELECT id FROM span_blocks WHERE max_start_us < ? LIMIT ?", arguments: [cutoffMicros, limit])
        guard !ids.isEmpty else { return 0 }
        let list = ids.map(String.init).joined(separator: ",")
        try db.execute(sql: "DELETE FROM span_block_names WHERE block_id IN (\(list))")
        try db.execute(sql: "DELETE FROM span_blocks WHERE id IN (\(list))")
        spanBlocks.remove(ids: ids)
        return ids.count
    }
}

/// The spans of a block with one service, name and remote service: a `span_block_names` row.
struct NameKey: Hashable {
    var service: String
    var name: String
    var remoteService: String?
}

struct NameSummary {
    var minStart: Int64
    var maxStart: Int64
    var maxDuration: Int64 = 0
    var errors = 0
    var count = 0

    init(start: Int64) {
        minStart = start
        maxStart = start
    }

    mutating func add(start: Int64, duration: Int64, isError: Bool) {
        minStart = min(minStart, start)
        maxStart = max(maxStart, start)
        maxDuration = max(maxDuration, duration)
        if isError { errors += 1 }
        count += 1
    }

    /// The summary of both summaries' spans.
    func merging(_ other: NameSummary) -> NameSummary {
        var merged = self
        merged.minStart = min(minStart, other.minStart)
        merged.maxStart = max(maxStart, other.maxStart)
        merged.maxDuration = max(maxDuration, other.maxDuration)
        merged.errors += other.errors
        merged.count += other.count
        return merged
    }
}

// MARK: - Reading

extension SextantDatabase {
    /// The spans of `traces` found in blocks, per trace, each span once.
    func blockSpans(of traces: [TraceID], _ db: Database) throws -> [TraceID: [Span]] {
        var blocks = Set<Int64>()
        for trace in traces { blocks.formUnion(spanBlocks.blocks(mayHold: trace)) }
        guard !blocks.isEmpty else { return [:] }
        let wanted = Set(traces)
        var found: [TraceID: [Span]] = [:]
        let statement = try db.cachedStatement(sql: "SELECT data FROM span_blocks WHERE id = ?")
        for id in blocks.sorted() {
            guard let data = try Data.fetchOne(statement, arguments: [id]) else { continue }
            for span in try Self.decodeBlock(data, id: id, selection: SpanBlock.Selection(traces: wanted)) {
                found[span.traceID, default: []].append(span)
            }
        }
        return found
    }

    /// The ids of the traces with a span in a block matching `query`, each with its newest
    /// matching span's start, newest first: at least `query.limit` of them when there are, and
    /// every trace whose newest match is newer than any left unread.
    func blockTraceIDs(matching query: TraceQuery, _ db: Database) throws -> [(trace: TraceID, newest: Int64)] {
        let limit = max(query.limit, 0)
        guard limit > 0 else { return [] }
        var sql = """
            SELECT block_id, max(max_start_us) AS newest FROM span_block_names
            WHERE max_start_us >= ? AND min_start_us <= ?
            """
        var arguments: StatementArguments = [query.fromMicros, query.toMicros]
        Self.addSearchConditions(
            query, to: &sql, &arguments, minDuration: "max_duration_us >= ?", maxDuration: nil, error: "error_count > 0")
        sql += " GROUP BY block_id ORDER BY newest DESC"
        let candidates = try Row.fetchAll(db, sql: sql, arguments: arguments).map { (id: $0[0] as Int64, newest: $0[1] as Int64) }

        var selection = SpanBlock.Selection()
        selection.service = query.service
        selection.minDurationMicros = query.minDurationMicros
        selection.maxDurationMicros = query.maxDurationMicros
        selection.fromMicros = query.fromMicros
        selection.toMicros = query.toMicros
        selection.errorOnly = query.errorOnly
        var newest: [TraceID: Int64] = [:]
        let statement = try db.cachedStatement(sql: "SELECT data FROM span_blocks WHERE id = ?")
        for (index, block) in candidates.enumerated() {
            guard let data = try Data.fetchOne(statement, arguments: [block.id]) else { continue }
            for span in try Self.decodeBlock(data, id: block.id, selection: selection) where Self.matches(span, query) {
                newest[span.traceID] = max(newest[span.traceID] ?? .min, span.startMicros)
            }
            // Done once `limit` traces have a match newer than anything the next blocks hold.
            let next = index + 1 < candidates.count ? candidates[index + 1].newest : Int64.min
            if newest.count >= limit, newest.values.filter({ $0 >= next }).count >= limit { break }
        }
        return newest.map { (trace: $0.key, newest: $0.value) }.sorted { $0.newest > $1.newest }
    }

    /// Whether one span matches every condition of a trace search.
    static func matches(_ span: Span, _ query: TraceQuery) -> Bool {
        guard span.startMicros >= query.fromMicros, span.startMicros <= query.toMicros else { return false }
        if let service = query.service, span.serviceName != service { return false }
        if let remote = query.remoteService, span.remoteEndpoint?.serviceName != remote { return false }
        if let name = query.spanName, span.name != name { return false }
        if let min = query.minDurationMicros, span.durationMicros < min { return false }
        if let max = query.maxDurationMicros, span.durationMicros > max { return false }
        if query.errorOnly, !span.isError { return false }
        return query.annotationTerms.isEmpty
            || query.matchesAnnotationTerms(tags: span.tags, annotations: span.annotations)
    }

    static func decodeBlock(_ data: Data, id: Int64, selection: SpanBlock.Selection? = nil) throws -> [Span] {
        do {
            return try SpanBlock.decode([UInt8](data), selection: selection)
        } catch {
            throw StoreError(.failed, "span block \(id) cannot be read: \(error)")
        }
    }
}

// MARK: - Listing

extension SextantDatabase {
    /// Calls `body` with every stored span's trace and span id (blocks, then rows stored before
    /// blocks), one block at a time, in one read snapshot.
    package func forEachStoredSpanID(_ body: @Sendable (TraceID, SpanID) -> Void) async throws {
        try await pool.read { db in
            let blocks = try Row.fetchCursor(db, sql: "SELECT id, data FROM span_blocks ORDER BY id")
            while let row = try blocks.next() {
                for span in try Self.decodeBlock(row["data"], id: row["id"]) { body(span.traceID, span.spanID) }
            }
            let legacy = try Row.fetchCursor(db, sql: "SELECT trace_id, span_id FROM spans")
            while let row = try legacy.next() { body(row[0], row[1]) }
        }
    }
}
