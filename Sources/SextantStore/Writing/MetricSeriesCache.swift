import GRDB
import SextantModel
import Synchronization

/// What the writer knows of each metric series: its id and the state counter accumulation needs.
/// Only the writer uses it, inside its transactions; a failed transaction empties it.
final class MetricSeriesCache: Sendable {
    struct Key: Hashable {
        var name: String
        var labels: String
    }

    struct Series {
        var id: Int64
        var hasLatest: Bool
        var ts: Int64
        var value: Double
        var raw: Double
        var offset: Double
    }

    private struct State {
        var series: [Key: Series] = [:]
        var countByName: [String: Int] = [:]
        /// Series of each name held in `series`.
        var cachedByName: [String: Int] = [:]
    }

    private let state = Mutex(State())

    func reset() {
        state.withLock { $0 = State() }
    }

    func cached(_ key: Key) -> Series? {
        state.withLock { $0.series[key] }
    }

    func store(_ key: Key, _ series: Series) {
        state.withLock { state in
            if state.series.updateValue(series, forKey: key) == nil {
                state.cachedByName[key.name, default: 0] += 1
            }
        }
    }

    /// Whether a name has `limit` series or more and every one of them is cached, so that a key
    /// not cached is a new series past the limit, known without a look-up.
    func isFullAndCached(name: String, limit: Int) -> Bool {
        state.withLock { state in
            guard let count = state.countByName[name] else { return false }
            return count >= limit && state.cachedByName[name, default: 0] >= count
        }
    }

    /// Series stored under a name, counted once from the database then kept up to date.
    func seriesCount(name: String, _ db: Database) throws -> Int {
        if let n = state.withLock({ $0.countByName[name] }) { return n }
        let n = try Int.fetchOne(db.cachedStatement(sql: "SELECT count(*) FROM metric_series WHERE name = ?"), arguments: [name]) ?? 0
        state.withLock { $0.countByName[name] = n }
        return n
    }

    func added(name: String) {
        state.withLock { $0.countByName[name, default: 0] += 1 }
    }
}
