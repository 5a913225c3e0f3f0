internal import Foundation
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

    /// Hashes the numbers only, mixed into one word. `Hasher` fed every field, the two strings by
    /// their normalized characters, was about 7 % of the writer's samples on access logs, for keys
    /// that nearly always differ in their numbers (a call block, the rollups and the counters each
    /// look its facts up). Equal facts still hash alike; the strings (response flags, security
    /// policy) only tell apart keys whose numbers agree.
    func hash(into hasher: inout Hasher) {
        let spread: UInt64 = 0x9E37_79B9_7F4A_7C15
        var word = UInt64(bitPattern: proxyID) &* spread
        word = (word ^ UInt64(bitPattern: peerID)) &* spread
        word = (word ^ UInt64(bitPattern: serviceID)) &* spread
        word ^= UInt64(truncatingIfNeeded: responseCode) << 24 ^ UInt64(truncatingIfNeeded: grpcStatus &+ 1) << 40
        word ^= UInt64(truncatingIfNeeded: reporter) << 8 ^ UInt64(truncatingIfNeeded: requestProtocol) << 12
        hasher.combine(paired ? ~word : word)
    }
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

    /// What places the call in the rollups besides its labels.
    var measures: RollupDeltas.Measures {
        RollupDeltas.Measures(
            startMicros: startMicros, durationMicros: durationMicros, requestBytes: requestBytes,
            responseBytes: responseBytes, isTCP: facts.requestProtocol == RequestProtocol.tcp.rawValue)
    }

    init(
        facts: CallFacts, startMicros: Int64, durationMicros: Int64, latencyBucket: Int, requestBytes: Int64,
        responseBytes: Int64, sources: Int
    ) {
        self.facts = facts
        self.startMicros = startMicros
        self.durationMicros = durationMicros
        self.latencyBucket = latencyBucket
        self.requestBytes = requestBytes
        self.responseBytes = responseBytes
        self.sources = sources
    }

    /// Reads `columns` from `row`, starting at column `offset`.
    init(row: Row, offset o: Int = 0) {
        facts = CallFacts(
            reporter: row[o], proxyID: row[o + 1], peerID: row[o + 2], serviceID: row[o + 3], requestProtocol: row[o + 4],
            responseCode: row[o + 5], grpcStatus: row[o + 6], responseFlags: row[o + 7], securityPolicy: row[o + 8],
            paired: row[o + 9])
        startMicros = row[o + 10]
        durationMicros = row[o + 11]
        latencyBucket = row[o + 12]
        requestBytes = row[o + 13]
        responseBytes = row[o + 14]
        sources = row[o + 15]
    }

    /// The same call once pairing has linked it to `peer`'s report.
    func paired(with peer: Int64) -> CallSample {
        var linked = self
        linked.facts.paired = true
        linked.facts.peerID = peer
        return linked
    }

    /// The same for a stored TCP connection: a series of protocol tcp whose request and response
    /// bytes are the bytes received from and sent to the client.
    static let connectionColumns = """
        reporter, proxy_id, coalesce(peer_id, 0), service_id, \(RequestProtocol.tcp.rawValue), 0, -1,
        response_flags, security_policy, paired, ts_us, duration_us, latency_bucket, received_bytes, sent_bytes, sources
        """

    /// The stored TCP connection with this row id.
    static func fetch(connectionID id: Int64, _ db: Database) throws -> CallSample? {
        try Row.fetchOne(
            db.cachedStatement(sql: "SELECT \(connectionColumns) FROM tcp_connections WHERE id = ?"), arguments: [id]
        ).map { CallSample(row: $0) }
    }
}

/// What one write transaction changes in the rollups, applied at its end in the same transaction.
struct RollupDeltas {
    /// Bucket widths in seconds: 1, 5 and 10 minutes, 1 hour, 1 day. An unaligned hour reads at
    /// most 4 + 4 minute, 1 + 1 five-minute and 5 ten-minute buckets per series.
    /// Each a multiple of the first (`totals` relies on it).
    static let tiers: [Int64] = [60, 300, 600, 3600, 86_400]
    static let boundCount = IstioHistogram.bounds.count

    /// A bucket of one tier.
    struct Bucket: Hashable {
        var tier: Int64
        var start: Int64
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
        /// Calls per latency sketch index.
        var latency: [Int: Int] = [:]

        mutating func add(_ s: CallSample, sign: Int, bounds: (duration: Int?, request: Int?, response: Int?)) {
            count += sign
            durationMicros += Int64(sign) * s.durationMicros
            requestBytes += Int64(sign) * s.requestBytes
            responseBytes += Int64(sign) * s.responseBytes
            if sign > 0 { sources |= s.sources }
            if let i = bounds.duration { duration[i] += sign }
            if let i = bounds.request { request[i] += sign }
            if let i = bounds.response { response[i] += sign }
            latency[s.latencyBucket, default: 0] += sign
        }

        /// Adds another bucket's totals to these.
        mutating func merge(_ other: Totals) {
            count += other.count
            durationMicros += other.durationMicros
            requestBytes += other.requestBytes
            responseBytes += other.responseBytes
            sources |= other.sources
            for i in 0..<RollupDeltas.boundCount {
                duration[i] += other.duration[i]
                request[i] += other.request[i]
                response[i] += other.response[i]
            }
            latency.merge(other.latency, uniquingKeysWith: +)
        }
    }

    /// Per label set (hashed once per call), its totals per bucket of the first tier, by the
    /// bucket's start. Every other tier is a multiple of the first, so each of its buckets is a
    /// sum of whole first-tier buckets: they are added up when the deltas are written, once per
    /// bucket instead of once per call and tier.
    private(set) var totals: [CallFacts: [Int64: Totals]] = [:]

    var isEmpty: Bool { totals.isEmpty }
    var labelSets: Int { totals.count }

    /// What places a call in the rollups: its start and the values its histograms count.
    struct Measures: Equatable, Sendable {
        var startMicros: Int64
        var durationMicros: Int64
        var requestBytes: Int64
        var responseBytes: Int64
        var isTCP: Bool
    }

    /// The start second and histogram bounds of a call's measures, computed where the call is
    /// prepared instead of in the write transaction.
    struct Placement: Sendable {
        var measures: Measures
        /// The call's start in whole seconds.
        var seconds: Int64
        var durationBound: Int?
        var requestBound: Int?
        var responseBound: Int?

        init(measures m: Measures) {
            measures = m
            seconds = RollupDeltas.floorSeconds(micros: m.startMicros)
            // Istio's histograms are of requests; TCP series keep counts, bytes and the sketch only.
            durationBound = m.isTCP ? nil : RollupDeltas.boundIndex(Double(m.durationMicros) / 1000)
            requestBound = m.isTCP ? nil : RollupDeltas.boundIndex(Double(m.requestBytes))
            responseBound = m.isTCP ? nil : RollupDeltas.boundIndex(Double(m.responseBytes))
        }
    }

    /// Whole seconds since the epoch, rounded down (also before 1970).
    static func floorSeconds(micros: Int64) -> Int64 {
        micros >= 0 ? micros / 1_000_000 : (micros + 1) / 1_000_000 - 1
    }

    /// Whole seconds since the epoch, rounded down (also before 1970).
    static func floorSeconds(milliseconds: Int64) -> Int64 {
        milliseconds >= 0 ? milliseconds / 1000 : (milliseconds + 1) / 1000 - 1
    }

    /// The start of the `tier`-second bucket holding `seconds`.
    static func bucket(seconds: Int64, tier: Int64) -> Int64 {
        seconds - ((seconds % tier) + tier) % tier
    }

    /// Counts a call in (`sign` 1) or out (`sign` -1) of its buckets; `placement` is used when it
    /// was computed for the sample's measures.
    mutating func add(_ s: CallSample, sign: Int, placement: Placement? = nil) {
        let measures = s.measures
        let place: Placement
        if let placement, placement.measures == measures {
            place = placement
        } else {
            place = Placement(measures: measures)
        }
        // Changed in place: a copy taken out of the dictionaries would copy its arrays on write.
        totals[s.facts, default: [:]].modify { buckets in
            buckets[Self.bucket(seconds: place.seconds, tier: Self.tiers[0]), default: Totals()]
                .add(s, sign: sign, bounds: (place.durationBound, place.requestBound, place.responseBound))
        }
    }

    /// Moves a call whose stored row changed from `old` to `new`.
    mutating func move(from old: CallSample, to new: CallSample, placement: Placement? = nil) {
        guard old != new else { return }
        add(old, sign: -1, placement: placement)
        add(new, sign: 1, placement: placement)
    }

    /// The first bound at or above `value`; nil past the last (the +Inf bucket).
    static func boundIndex(_ value: Double) -> Int? {
        IstioHistogram.bounds.firstIndex { value <= $0 }
    }

    private static let upsertSQL: String = {
        let names = ["d", "q", "r"].flatMap { p in (0..<boundCount).map { "\(p)\($0)" } }
        return """
            INSERT INTO call_rollups (tier, bucket, series_id, count, duration_us, request_bytes, response_bytes, sources,
                latency, \(names.joined(separator: ", ")))
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, \(names.map { _ in "?" }.joined(separator: ", ")))
            ON CONFLICT (tier, bucket, series_id) DO UPDATE SET
                latency = sextant_sketch_merge(latency, excluded.latency),
                count = count + excluded.count, duration_us = duration_us + excluded.duration_us,
                request_bytes = request_bytes + excluded.request_bytes,
                response_bytes = response_bytes + excluded.response_bytes, sources = sources | excluded.sources,
                \(names.map { "\($0) = \($0) + excluded.\($0)" }.joined(separator: ", "))
            """
    }()

    /// Applies the deltas to the rollup tables.
    func apply(_ db: Database, series: CallSeriesCache) throws {
        let upsert = BoundStatement(try db.cachedStatement(sql: Self.upsertSQL), db)
        for (facts, minutes) in totals {
            let id = try series.id(for: facts, db)
            var buckets: [Bucket: Totals] = [:]
            for (start, t) in minutes {
                buckets[Bucket(tier: Self.tiers[0], start: start)] = t
                for tier in Self.tiers.dropFirst() {
                    buckets[Bucket(tier: tier, start: Self.bucket(seconds: start, tier: tier)), default: Totals()].merge(t)
                }
            }
            for (bucket, t) in buckets {
                try upsert.run { bind in
                    for value in [bucket.tier, bucket.start, id, Int64(t.count), t.durationMicros, t.requestBytes,
                        t.responseBytes, Int64(t.sources)] {
                        try bind(value)
                    }
                    try bind(LatencySketch.encode(t.latency))
                    for count in t.duration { try bind(count) }
                    for count in t.request { try bind(count) }
                    for count in t.response { try bind(count) }
                }
            }
        }
    }
}

extension Dictionary {
    /// Runs `body` on the dictionary in place (a `mutating` hop for a value reached through a
    /// subscript with a default).
    fileprivate mutating func modify(_ body: (inout Self) -> Void) {
        body(&self)
    }
}
