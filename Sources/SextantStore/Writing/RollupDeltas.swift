import GRDB
import SextantModel

/// The label set a stored call is rolled up under: Istio's labels plus whether it is paired.
struct CallFacts: Hashable {
    var reporter: Int
    var proxyID: Int64
    /// 0 when the other side is unknown.
    var peerID: Int64
    var serviceID: Int64
    var requestProtocol: Int
    var responseCode: Int
    /// -1 when there is none.
    var grpcStatus: Int
    var responseFlags: String
    var securityPolicy: String
    var paired: Bool
}

/// One stored call as the rollups see it.
struct CallSample: Equatable {
    var facts: CallFacts
    var startMicros: Int64
    var durationMicros: Int64
    var latencyBucket: Int
    var requestBytes: Int64
    var responseBytes: Int64
    var sources: Int

    static let columns = """
        reporter, proxy_id, coalesce(peer_id, 0), service_id, protocol, response_code, coalesce(grpc_status, -1),
        response_flags, security_policy, paired, ts_us, duration_us, latency_bucket, request_bytes, response_bytes, sources
        """

    init(row: Row) {
        facts = CallFacts(
            reporter: row[0], proxyID: row[1], peerID: row[2], serviceID: row[3], requestProtocol: row[4],
            responseCode: row[5], grpcStatus: row[6], responseFlags: row[7], securityPolicy: row[8], paired: row[9])
        startMicros = row[10]
        durationMicros = row[11]
        latencyBucket = row[12]
        requestBytes = row[13]
        responseBytes = row[14]
        sources = row[15]
    }

    /// The stored call with this row id.
    static func fetch(id: Int64, _ db: Database) throws -> CallSample? {
        try Row.fetchOne(db.cachedStatement(sql: "SELECT \(columns) FROM requests WHERE id = ?"), arguments: [id])
            .map(CallSample.init(row:))
    }
}

/// What one write transaction changes in the rollups, applied at its end in the same transaction.
struct RollupDeltas {
    /// Bucket widths in seconds: minutes and hours.
    static let tiers: [Int64] = [60, 3600]
    static let boundCount = IstioHistogram.bounds.count

    struct Key: Hashable {
        var tier: Int64
        var bucket: Int64
        var facts: CallFacts
    }

    struct LatencyKey: Hashable {
        var key: Key
        var latencyBucket: Int
    }

    struct Totals {
        var count = 0
        var durationMicros: Int64 = 0
        var requestBytes: Int64 = 0
        var responseBytes: Int64 = 0
        var sources = 0
        var duration = [Int](repeating: 0, count: RollupDeltas.boundCount)
        var request = [Int](repeating: 0, count: RollupDeltas.boundCount)
        var response = [Int](repeating: 0, count: RollupDeltas.boundCount)
    }

    private(set) var totals: [Key: Totals] = [:]
    private(set) var latency: [LatencyKey: Int] = [:]

    var isEmpty: Bool { totals.isEmpty }

    /// Counts a call in (`sign` 1) or out (`sign` -1) of its buckets.
    mutating func add(_ s: CallSample, sign: Int) {
        let seconds = s.startMicros >= 0 ? s.startMicros / 1_000_000 : (s.startMicros + 1) / 1_000_000 - 1
        let durationBound = Self.boundIndex(Double(s.durationMicros) / 1000)
        let requestBound = Self.boundIndex(Double(s.requestBytes))
        let responseBound = Self.boundIndex(Double(s.responseBytes))
        for tier in Self.tiers {
            let key = Key(tier: tier, bucket: seconds - ((seconds % tier) + tier) % tier, facts: s.facts)
            var t = totals[key, default: Totals()]
            t.count += sign
            t.durationMicros += Int64(sign) * s.durationMicros
            t.requestBytes += Int64(sign) * s.requestBytes
            t.responseBytes += Int64(sign) * s.responseBytes
            if sign > 0 { t.sources |= s.sources }
            if let i = durationBound { t.duration[i] += sign }
            if let i = requestBound { t.request[i] += sign }
            if let i = responseBound { t.response[i] += sign }
            totals[key] = t
            latency[LatencyKey(key: key, latencyBucket: s.latencyBucket), default: 0] += sign
        }
    }

    /// Moves a call whose stored row changed from `old` to `new`.
    mutating func move(from old: CallSample, to new: CallSample) {
        guard old != new else { return }
        add(old, sign: -1)
        add(new, sign: 1)
    }

    /// The first bound at or above `value`; nil past the last (the +Inf bucket).
    static func boundIndex(_ value: Double) -> Int? {
        IstioHistogram.bounds.firstIndex { value <= $0 }
    }

    private static let upsertSQL: String = {
        let names = ["d", "q", "r"].flatMap { p in (0..<boundCount).map { "\(p)\($0)" } }
        return """
            INSERT INTO call_rollups (tier, bucket, series_id, count, duration_us, request_bytes, response_bytes, sources,
                \(names.joined(separator: ", ")))
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, \(names.map { _ in "?" }.joined(separator: ", ")))
            ON CONFLICT (tier, bucket, series_id) DO UPDATE SET
                count = count + excluded.count, duration_us = duration_us + excluded.duration_us,
                request_bytes = request_bytes + excluded.request_bytes,
                response_bytes = response_bytes + excluded.response_bytes, sources = sources | excluded.sources,
                \(names.map { "\($0) = \($0) + excluded.\($0)" }.joined(separator: ", "))
            """
    }()

    /// Applies the deltas to the rollup tables.
    func apply(_ db: Database, series: CallSeriesCache) throws {
        let upsert = try db.cachedStatement(sql: Self.upsertSQL)
        for (key, t) in totals {
            let id = try series.id(for: key.facts, db)
            var arguments: [(any DatabaseValueConvertible)?] = [
                key.tier, key.bucket, id, t.count, t.durationMicros, t.requestBytes, t.responseBytes, t.sources,
            ]
            arguments += (t.duration + t.request + t.response).map { $0 as (any DatabaseValueConvertible)? }
            try upsert.execute(arguments: StatementArguments(arguments))
        }
        let latencyUpsert = try db.cachedStatement(
            sql: """
                INSERT INTO call_rollup_latency (tier, bucket, series_id, latency_bucket, count) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT (tier, bucket, series_id, latency_bucket) DO UPDATE SET count = count + excluded.count
                """)
        for (key, n) in latency where n != 0 {
            let id = try series.id(for: key.key.facts, db)
            try latencyUpsert.execute(arguments: [key.key.tier, key.key.bucket, id, key.latencyBucket, n])
        }
    }
}
