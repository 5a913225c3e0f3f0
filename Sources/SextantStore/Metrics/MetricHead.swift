internal import Foundation
import GRDB
import SextantModel
import Synchronization

/// Every metric series in memory, as Prometheus's TSDB head holds them: label sets interned as
/// symbols, postings from each name and label pair to its series, each series' newest sample and
/// counter state, and the samples not yet written into chunks.
///
/// The writer changes it only after a commit, with what the commit stored (`apply`); readers take
/// a snapshot (`view`), a copy of a few array references, and never wait for the writer. At start it
/// is loaded from `metric_series_blocks` and `metric_latest_snapshot`, then the `metric_appends` rows still
/// there are replayed. A flush writes the pending samples into per-series chunks, saves the newest
/// samples and deletes the appends, in one transaction.
package final class MetricHead: Sendable {
    /// A flush is due once the oldest pending sample is this old, or when the head chunks hold
    /// `maxPendingBytes`: at a 15 s scrape, chunks of about 60 samples, as compact as stored ones.
    static let flushInterval: Duration = .seconds(900)
    static let maxPendingBytes = 16 << 20
    /// The one rollup tier of ingested metrics (seconds): what retention keeps of expired chunks.
    package static let rollupTier: Int64 = 3600

    /// A series' newest sample and what counter accumulation needs.
    struct Latest: Equatable {
        var timeMs: Int64
        var value: Double
        /// The sender's own (cumulative) value.
        var raw: Double
        /// What the sender's resets added.
        var offset: Double

        /// The state after a stored sample: a sample no older than the newest (or any delta
        /// point) becomes the newest.
        static func advanced(_ latest: Latest?, by sample: MetricAppend.Sample) -> Latest? {
            guard let latest else {
                return Latest(timeMs: sample.timeMs, value: sample.value, raw: sample.raw, offset: sample.offset)
            }
            guard sample.timeMs >= latest.timeMs || sample.isDelta else { return latest }
            return Latest(timeMs: max(latest.timeMs, sample.timeMs), value: sample.value, raw: sample.raw, offset: sample.offset)
        }
    }

    struct Series {
        var id: Int64
        var name: UInt32
        var family: UInt32
        var kind: MetricPoint.Kind
        /// Label name and value symbols, alternating, sorted by name.
        var labels: [UInt32]
        var latest: Latest?
        var hash: Int
        /// The `metric_series_blocks` row that holds it.
        var block: Int64
        /// False once retention removed it (its slot stays, out of every look-up).
        var isLive = true
    }


    /// A series made by a commit, added to the head once the commit is done.
    struct NewSeries {
        var id: Int64
        var key: MetricSeriesKey
        var family: String
        var kind: MetricPoint.Kind
    }

    struct State {
        var symbols: [String] = []
        var symbolIDs: [String: UInt32] = [:]
        /// Live series' uses of each symbol; a symbol no series uses is freed and its id reused.
        var symbolUses: [UInt32] = []
        var freeSymbols: [UInt32] = []
        var series: [Series] = []
        /// Live series by key hash; `collided` holds the rare live series whose hash another took.
        var byHash: [Int: Int32] = [:]
        var collided: [Int32] = []
        var byID: [Int64: Int32] = [:]
        var byName: [UInt32: [Int32]] = [:]
        /// Series by label pair: name symbol in the high half, value symbol in the low.
        var byLabel: [UInt64: [Int32]] = [:]
        var liveByName: [String: Int] = [:]
        /// The id the next new series takes.
        var nextID: Int64 = 1
        /// Live series per series block.
        var blockLive: [Int64: Int] = [:]
        /// Blocks under half live since they were written, for retention to rewrite or delete.
        var sparseBlocks: Set<Int64> = []
        var blockSize: [Int64: Int] = [:]
        /// The number the next flush writes its chunks under.
        var flush: Int64 = 1
        /// Each series' samples not yet in a stored chunk, compressed as they come (by slot).
        var heads: [SampleChunk.Appender?] = []
        var pendingSamples = 0
        var pendingBytes = 0
        /// The `metric_appends` rows holding the head chunks' samples.
        var appends: [Int64] = []
        var pendingSince: ContinuousClock.Instant?
        /// Live series in federation order (name, then labels), made by a reader when missing.
        var order: [Int32]?
    }

    let state = Mutex(State())

    init() {}

    // MARK: - Writer

    /// The live series of a key, if any.
    func find(_ key: MetricSeriesKey) -> (index: Int32, series: Series)? {
        state.withLock { $0.find(key) }
    }

    /// The id a commit's `n`th new series takes (ids are the head's to give).
    func newID(_ n: Int) -> Int64 {
        state.withLock { $0.nextID } + Int64(n)
    }

    /// Live series of a metric name.
    func count(name: String) -> Int {
        state.withLock { $0.liveByName[name] ?? 0 }
    }

    /// Takes what a commit stored: its new series, then its samples in order.
    func apply(newSeries: [NewSeries], seriesBlock: Int64?, samples: [MetricAppend.Sample], appendID: Int64?) {
        state.withLock { state in
            if let seriesBlock {
                for series in newSeries { state.add(series, latest: nil, block: seriesBlock) }
                state.blockSize[seriesBlock] = newSeries.count
            }
            state.take(samples)
            if let appendID { state.appends.append(appendID) }
        }
    }

    /// Whether the pending samples should be written now.
    var isFlushDue: Bool {
        state.withLock { state in
            guard let since = state.pendingSince else { return false }
            return state.pendingBytes >= Self.maxPendingBytes || since.duration(to: .now) >= Self.flushInterval
        }
    }

    var hasPending: Bool {
        state.withLock { $0.pendingSamples > 0 || !$0.appends.isEmpty }
    }

    /// Writes the head chunks as stored chunks, saves every series' newest sample as the snapshot
    /// and deletes the appends (inside the caller's transaction). Returns what `flushed` takes once
    /// the transaction is committed.
    func flush(_ db: Database) throws -> (samples: Int, appends: Int) {
        let (heads, pendingSamples, appends, series, flush) = state.withLock {
            ($0.heads, $0.pendingSamples, $0.appends, $0.series, $0.flush)
        }
        guard pendingSamples > 0 || !appends.isEmpty else { return (0, 0) }
        // The appends go first: the chunks take the pages they free.
        if let last = appends.last {
            try db.execute(sql: "DELETE FROM metric_appends WHERE id <= ?", arguments: [last])
        }
        let chunk = try db.cachedStatement(
            sql: "INSERT INTO metric_chunks (series_id, max_ts_ms, flush, min_ts_ms, count, data) VALUES (?, ?, ?, ?, ?, ?)")
        for (slot, head) in heads.enumerated() {
            guard let head, head.count > 0 else { continue }
            // In time order; of equal times the later stored wins (the sort is stable).
            var run: [(Int64, Double)] = []
            run.reserveCapacity(head.count)
            for sample in head.samples().sorted(by: { $0.0 < $1.0 }) {
                if run.last?.0 == sample.0 { run[run.count - 1].1 = sample.1 } else { run.append(sample) }
            }
            try chunk.execute(arguments: [
                series[slot].id, run.last!.0, flush, run.first!.0, run.count, Data(SampleChunk.encode(run)),
            ])
        }
        var snapshot = MetricAppend()
        for s in series where s.isLive {
            if let l = s.latest {
                snapshot.samples.append(
                    MetricAppend.Sample(seriesID: s.id, timeMs: l.timeMs, value: l.value, raw: l.raw, offset: l.offset, isDelta: false))
            }
        }
        try db.execute(
            sql: "INSERT OR REPLACE INTO metric_latest_snapshot (id, data) VALUES (1, ?)", arguments: [Data(snapshot.encoded())])
        return (pendingSamples, appends.count)
    }

    /// Forgets what a committed flush wrote: the head chunks (when it wrote samples) and its first
    /// `appends` appends.
    func flushed(_ done: (samples: Int, appends: Int)) {
        state.withLock { state in
            if done.samples > 0 || done.appends > 0 { state.flush += 1 }
            // The writer flushes between commits: nothing came since the flush read the heads.
            if done.samples > 0 {
                state.heads = []
                state.pendingSamples = 0
                state.pendingBytes = 0
            }
            state.appends.removeFirst(done.appends)
            state.pendingSince = state.pendingSamples == 0 && state.appends.isEmpty ? nil : .now
        }
    }

    /// Adds one series' samples (time order) to its rollup rows of one tier.
    static func rollUp(_ run: [(Int64, Double)], tier: Int64, seriesID: Int64, _ db: Database) throws {
        let statement = try db.cachedStatement(
            sql: """
                INSERT INTO metric_rollups (tier, bucket, series_id, min_value, max_value, sum_value, count, last_value, last_ts_ms)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (tier, bucket, series_id) DO UPDATE SET
                    min_value = min(min_value, excluded.min_value), max_value = max(max_value, excluded.max_value),
                    sum_value = sum_value + excluded.sum_value, count = count + excluded.count,
                    last_value = iif(excluded.last_ts_ms >= last_ts_ms, excluded.last_value, last_value),
                    last_ts_ms = max(last_ts_ms, excluded.last_ts_ms)
                """)
        var index = 0
        while index < run.count {
            let bucket = RollupDeltas.bucket(seconds: RollupDeltas.floorSeconds(milliseconds: run[index].0), tier: tier)
            var low = run[index].1
            var high = low
            var sum = 0.0
            var count = 0
            var last = run[index]
            while index < run.count,
                RollupDeltas.bucket(seconds: RollupDeltas.floorSeconds(milliseconds: run[index].0), tier: tier) == bucket
            {
                let value = run[index].1
                low = min(low, value)
                high = max(high, value)
                sum += value
                count += 1
                last = run[index]
                index += 1
            }
            try statement.execute(arguments: [tier, bucket, seriesID, low, high, sum, count, last.1, last.0])
        }
    }

    // MARK: - Start and retention

    /// Loads every series and its newest saved sample, then replays the appends no flush wrote.
    func load(_ db: Database) throws {
        try state.withLock { state in
            state = State()
            var saved: [Int64: Latest] = [:]
            if let data = try Data.fetchOne(db, sql: "SELECT data FROM metric_latest_snapshot WHERE id = 1") {
                for l in try MetricAppend.decode([UInt8](data)).samples {
                    saved[l.seriesID] = Latest(timeMs: l.timeMs, value: l.value, raw: l.raw, offset: l.offset)
                }
            }
            state.flush = (try Int64.fetchOne(db, sql: "SELECT max(flush) FROM metric_chunks") ?? 0) + 1
            let deleted = Set(try Int64.fetchAll(db, sql: "SELECT series_id FROM metric_series_deleted"))
            let blocks = try Row.fetchCursor(db, sql: "SELECT id, data FROM metric_series_blocks ORDER BY id")
            while let row = try blocks.next() {
                let block: Int64 = row["id"]
                let series = try MetricSeriesBlock.decode([UInt8](row["data"] as Data))
                state.blockSize[block] = series.count
                for s in series {
                    state.nextID = max(state.nextID, s.id + 1)
                    if !deleted.contains(s.id) { state.add(s, latest: saved[s.id], block: block) }
                }
                if (state.blockLive[block] ?? 0) * 2 < series.count { state.sparseBlocks.insert(block) }
            }
            let appends = try Row.fetchCursor(db, sql: "SELECT id, data FROM metric_appends ORDER BY id")
            while let row = try appends.next() {
                let append = try MetricAppend.decode([UInt8](row["data"] as Data))
                state.take(append.samples)
                state.appends.append(row["id"])
            }
        }
    }

    /// Moves the rows of `metric_series` into series blocks, those of `metric_samples` (one per
    /// sample) into chunks of at most 120 samples and those of `metric_latest` into the snapshot,
    /// then drops the three tables.
    static func moveSeriesAndSamplesIntoBlocks(_ db: Database) throws {
        var series: [NewSeries] = []
        func writeSeries() throws {
            guard !series.isEmpty else { return }
            try db.execute(sql: "INSERT INTO metric_series_blocks (data) VALUES (?)", arguments: [Data(MetricSeriesBlock.encode(series))])
            series.removeAll(keepingCapacity: true)
        }
        let rows = try Row.fetchCursor(db, sql: "SELECT id, name, family, kind, labels FROM metric_series ORDER BY id")
        while let row = try rows.next() {
            let labels = SpanJSON.decodeObject(row["labels"]).map { MetricLabelPair($0.key, $0.value) }
            series.append(
                NewSeries(
                    id: row["id"], key: MetricSeriesKey(name: row["name"], labels: labels), family: row["family"],
                    kind: MetricPoint.Kind(rawValue: row["kind"]) ?? .untyped))
            if series.count == 1000 { try writeSeries() }
        }
        try writeSeries()

        let insert = try db.makeStatement(
            sql: "INSERT INTO metric_chunks (series_id, max_ts_ms, flush, min_ts_ms, count, data) VALUES (?, ?, 0, ?, ?, ?)")
        var run: [(Int64, Double)] = []
        var current: Int64?
        func writeChunk() throws {
            guard let current, !run.isEmpty else { return }
            try insert.execute(arguments: [current, run.last!.0, run.first!.0, run.count, Data(SampleChunk.encode(run))])
            run.removeAll(keepingCapacity: true)
        }
        let samples = try Row.fetchCursor(db, sql: "SELECT series_id, ts_ms, value FROM metric_samples ORDER BY series_id, ts_ms")
        while let row = try samples.next() {
            let id: Int64 = row["series_id"]
            if id != current || run.count == 120 {
                try writeChunk()
                current = id
            }
            run.append((row["ts_ms"], row["value"]))
        }
        try writeChunk()
        var snapshot = MetricAppend()
        for row in try Row.fetchAll(db, sql: "SELECT series_id, ts_ms, value, raw, offset FROM metric_latest ORDER BY series_id") {
            snapshot.samples.append(
                MetricAppend.Sample(
                    seriesID: row["series_id"], timeMs: row["ts_ms"], value: row["value"], raw: row["raw"], offset: row["offset"],
                    isDelta: false))
        }
        try db.execute(sql: "INSERT INTO metric_latest_snapshot (id, data) VALUES (1, ?)", arguments: [Data(snapshot.encoded())])
        try db.execute(sql: "DROP TABLE metric_samples; DROP TABLE metric_latest; DROP TABLE metric_series")
    }

    /// Series whose newest sample is older than `beforeMs` and that have nothing pending: what
    /// retention may delete once none of their data is left.
    func idle(beforeMs: Int64) -> [Int64] {
        state.withLock { state in
            return state.series.indices.compactMap { index in
                let series = state.series[index]
                let busy = index < state.heads.count && state.heads[index] != nil
                guard series.isLive, !busy, (series.latest?.timeMs ?? .min) < beforeMs else { return nil }
                return series.id
            }
        }
    }

    /// Takes series out after retention deleted their rows.
    func remove(ids: [Int64]) {
        state.withLock { state in
            for id in ids { state.remove(id: id) }
        }
    }

    /// Series blocks that have lost at least half their series, with which of their series live.
    func sparseBlocks() -> [(block: Int64, live: Set<Int64>)] {
        state.withLock { state in
            state.sparseBlocks.sorted().map { block in
                (block, Set(state.series.lazy.filter { $0.isLive && $0.block == block }.map(\.id)))
            }
        }
    }

    /// Takes a rewritten block: its live series moved to `new` (nil: it had none left).
    func rewrote(_ old: Int64, into new: Int64?, series: Set<Int64>) {
        state.withLock { state in
            state.sparseBlocks.remove(old)
            state.blockLive[old] = nil
            state.blockSize[old] = nil
            guard let new else { return }
            for id in series { if let slot = state.byID[id] { state.series[Int(slot)].block = new } }
            state.blockLive[new] = series.count
            state.blockSize[new] = series.count
        }
    }

    // MARK: - Readers

    /// A snapshot for readers: taken in O(1); the writer's next change copies what it touches.
    package func view() -> MetricHeadView {
        MetricHeadView(state: state.withLock { $0 }, head: self)
    }

    func keep(order: [Int32], forSeries count: Int) {
        state.withLock { state in
            if state.series.count == count { state.order = order }
        }
    }
}

extension MetricHead.State {
    func find(_ key: MetricSeriesKey) -> (index: Int32, series: MetricHead.Series)? {
        if let index = byHash[key.hash], matches(Int(index), key) { return (index, series[Int(index)]) }
        for index in collided where series[Int(index)].hash == key.hash && matches(Int(index), key) {
            return (index, series[Int(index)])
        }
        return nil
    }

    private func matches(_ index: Int, _ key: MetricSeriesKey) -> Bool {
        let s = series[index]
        guard s.isLive, s.labels.count == key.labels.count * 2, symbols[Int(s.name)] == key.name else { return false }
        for (position, label) in key.labels.enumerated()
        where symbols[Int(s.labels[2 * position])] != label.name || symbols[Int(s.labels[2 * position + 1])] != label.value {
            return false
        }
        return true
    }

    /// The symbol of `text`, made when new, with one more use.
    mutating func symbol(_ text: String) -> UInt32 {
        let id: UInt32
        if let known = symbolIDs[text] {
            id = known
        } else if let free = freeSymbols.popLast() {
            id = free
            symbols[Int(id)] = text
            symbolIDs[text] = id
        } else {
            id = UInt32(symbols.count)
            symbols.append(text)
            symbolUses.append(0)
            symbolIDs[text] = id
        }
        symbolUses[Int(id)] += 1
        return id
    }

    /// One use fewer of a symbol; freed at none.
    mutating func release(_ id: UInt32) {
        symbolUses[Int(id)] -= 1
        guard symbolUses[Int(id)] == 0 else { return }
        symbolIDs[symbols[Int(id)]] = nil
        symbols[Int(id)] = ""
        freeSymbols.append(id)
    }

    mutating func add(_ new: MetricHead.NewSeries, latest: MetricHead.Latest?, block: Int64) {
        let index = Int32(series.count)
        let name = symbol(new.key.name)
        var labels: [UInt32] = []
        labels.reserveCapacity(new.key.labels.count * 2)
        for label in new.key.labels {
            let pair = (symbol(label.name), symbol(label.value))
            labels.append(pair.0)
            labels.append(pair.1)
            byLabel[UInt64(pair.0) << 32 | UInt64(pair.1), default: []].append(index)
        }
        series.append(
            MetricHead.Series(
                id: new.id, name: name, family: symbol(new.family), kind: new.kind, labels: labels, latest: latest,
                hash: new.key.hash, block: block))
        blockLive[block, default: 0] += 1
        nextID = max(nextID, new.id + 1)
        if byHash[new.key.hash] == nil {
            byHash[new.key.hash] = index
        } else {
            collided.append(index)
        }
        byID[new.id] = index
        byName[name, default: []].append(index)
        liveByName[new.key.name, default: 0] += 1
        order = nil
    }

    mutating func take(_ samples: [MetricAppend.Sample]) {
        guard !samples.isEmpty else { return }
        if heads.count < series.count { heads.append(contentsOf: repeatElement(nil, count: series.count - heads.count)) }
        for sample in samples {
            // A series retention removed cannot have samples after it: its row is gone.
            guard let index = byID[sample.seriesID] else { continue }
            series[Int(index)].latest = MetricHead.Latest.advanced(series[Int(index)].latest, by: sample)
            let before = heads[Int(index)]?.bits.bytes.count ?? 0
            if heads[Int(index)] == nil { heads[Int(index)] = SampleChunk.Appender() }
            heads[Int(index)]!.append(sample.timeMs, sample.value)
            pendingBytes += heads[Int(index)]!.bits.bytes.count - before
            pendingSamples += 1
        }
        if pendingSince == nil { pendingSince = .now }
    }

    mutating func remove(id: Int64) {
        guard let index = byID.removeValue(forKey: id) else { return }
        let s = series[Int(index)]
        series[Int(index)].isLive = false
        if byHash[s.hash] == index {
            byHash[s.hash] = nil
            // A collided series of the same hash takes the slot.
            if let position = collided.firstIndex(where: { series[Int($0)].hash == s.hash }) {
                byHash[s.hash] = collided.remove(at: position)
            }
        } else {
            collided.removeAll { $0 == index }
        }
        // Empty postings go with their keys: a freed symbol's id may name another string later.
        byName[s.name]?.removeAll { $0 == index }
        if byName[s.name]?.isEmpty == true { byName[s.name] = nil }
        for position in stride(from: 0, to: s.labels.count, by: 2) {
            let key = UInt64(s.labels[position]) << 32 | UInt64(s.labels[position + 1])
            byLabel[key]?.removeAll { $0 == index }
            if byLabel[key]?.isEmpty == true { byLabel[key] = nil }
        }
        liveByName[symbols[Int(s.name)], default: 1] -= 1
        if liveByName[symbols[Int(s.name)]] == 0 { liveByName[symbols[Int(s.name)]] = nil }
        for symbol in [s.name, s.family] + s.labels { release(symbol) }
        series[Int(index)].labels = []
        blockLive[s.block, default: 1] -= 1
        if blockLive[s.block, default: 0] * 2 < blockSize[s.block, default: 0] { sparseBlocks.insert(s.block) }
        order = nil
    }
}
