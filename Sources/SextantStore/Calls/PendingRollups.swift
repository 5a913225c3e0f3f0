internal import Foundation
import GRDB

/// The call rollups' changes not yet written, and the call blocks they account for.
///
/// A commit adds its calls' rollup deltas here instead of upserting rollup rows: each upsert
/// merges a sketch and touches one row per label set and tier, and a commit of a few hundred calls
/// touched hundreds of rows. The deltas are written (`flush`) by the first commit that finds them
/// `interval` old, before any read of the rollups, and at shutdown, and the blocks they cover leave
/// `call_blocks_not_rolled_up` in the same transaction. So the rollup rows plus these deltas
/// always equal the stored calls; after a crash, or a failed commit (whose share of the deltas is
/// not known), `replayed` folds in again the blocks still listed.
struct PendingRollups {
    static let interval: Duration = .seconds(1)
    /// Label sets past which the deltas are written whatever their age.
    static let maxLabelSets = 20_000

    private(set) var deltas = RollupDeltas()
    /// The call blocks whose calls are in `deltas`.
    private(set) var blocks: [Int64] = []
    /// When the oldest change not yet written came.
    private var since: ContinuousClock.Instant?

    init() {}

    /// Whether anything is not yet written.
    var isPending: Bool { !deltas.isEmpty || !blocks.isEmpty }

    /// Whether the next commit should write the deltas.
    var isDue: Bool {
        guard isPending else { return false }
        return deltas.labelSets > Self.maxLabelSets || (since.map { $0.duration(to: .now) >= Self.interval } ?? true)
    }

    /// Takes a commit's changes: its calls' deltas (`change` adds them) and its call block.
    mutating func record(block: Int64?, _ change: (inout RollupDeltas) throws -> Void) rethrows {
        try change(&deltas)
        if let block { blocks.append(block) }
        if since == nil, isPending { since = .now }
    }

    /// Writes the deltas and takes their blocks off the list of those not rolled up (inside the
    /// caller's transaction).
    mutating func flush(_ db: Database, series: CallSeriesCache) throws {
        try deltas.apply(db, series: series)
        if !blocks.isEmpty {
            try db.execute(
                sql: "DELETE FROM call_blocks_not_rolled_up WHERE block_id IN (\(blocks.map(String.init).joined(separator: ",")))")
        }
        deltas = RollupDeltas()
        blocks = []
        since = nil
    }

    /// The deltas of the call blocks no rollups hold: each new call counted in, each revised
    /// call moved from its version before (found in an earlier block) to this one.
    static func replayed(_ db: Database) throws -> PendingRollups {
        var pending = PendingRollups()
        var blocks: [(id: Int64, entries: [CallBlock.Entry])] = []
        let rows = try Row.fetchCursor(
            db, sql: "SELECT id, data FROM call_blocks WHERE id IN (SELECT block_id FROM call_blocks_not_rolled_up) ORDER BY id")
        while let row = try rows.next() {
            var entries: [CallBlock.Entry] = []
            try CallBlock.decode([UInt8](row[1] as Data)) { entries.append($0) }
            blocks.append((row[0], entries))
        }
        guard !blocks.isEmpty else { return pending }
        // Calls first met in a revision: their version before is in a block the rollups hold.
        var before: [Int64: CallSample] = [:]
        var wanted = Set<Int64>()
        var met = Set<Int64>()
        for block in blocks {
            for entry in block.entries {
                if entry.isRevision, !met.contains(entry.rowID) { wanted.insert(entry.rowID) }
                met.insert(entry.rowID)
            }
        }
        if !wanted.isEmpty {
            // Newest first. Calls are numbered as they are first stored, so the blocks older than
            // one holding new calls hold only calls numbered below them: once those are below
            // every wanted call, the search ends. (A block of revisions alone says nothing.)
            let older = try Row.fetchCursor(
                db,
                sql: """
                    SELECT data FROM call_blocks
                    WHERE id < ? AND id NOT IN (SELECT block_id FROM call_blocks_not_rolled_up) ORDER BY id DESC
                    """, arguments: [blocks.last!.id])
            var versions = CallVersions()
            while let row = try older.next() {
                var firstNew = Int64.max
                try CallBlock.decode([UInt8](row[0] as Data)) { entry in
                    if case .call(let call, isRevision: false) = entry { firstNew = min(firstNew, call.rowID) }
                    if let call = versions.newest(entry), wanted.remove(call.rowID) != nil { before[call.rowID] = call.sample }
                }
                guard let oldest = wanted.min(), firstNew > oldest else { break }
            }
        }
        for block in blocks {
            pending.record(block: block.id) { deltas in
                for entry in block.entries {
                    let sample: CallSample
                    switch entry {
                    case .call(let call, isRevision: false):
                        sample = call.sample
                        deltas.add(sample, sign: 1)
                    case .call(let call, isRevision: true):
                        sample = call.sample
                        if let old = before[call.rowID] { deltas.move(from: old, to: sample) }
                    case .relabel(let rowID, let facts, let sources):
                        guard let old = before[rowID] else { continue }
                        var relabelled = old
                        relabelled.facts = facts
                        relabelled.sources = sources
                        sample = relabelled
                        deltas.move(from: old, to: sample)
                    }
                    // (A revision whose earlier version retention took stays as the rollups counted it.)
                    before[entry.rowID] = sample
                }
            }
        }
        return pending
    }
}
