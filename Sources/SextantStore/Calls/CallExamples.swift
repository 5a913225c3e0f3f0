import GRDB
import SextantModel

/// What one write transaction changes in `call_examples`: per edge (as a proxy reported it) and
/// minute, the slowest traced call and the newest failed one among the calls the transaction
/// stored or changed, merged into the table at its end (a slower or newer one replaces the row's).
///
/// A call is noted as it is once the transaction has merged and paired it; a call paired in a
/// later transaction is noted again under its new peer, and its earlier note stays where it was
/// (a graph only shows the examples of edges that have calls in its window).
struct ExampleDeltas {
    struct Key: Hashable {
        var bucket: Int64
        var reporter: Int
        var proxyID: Int64
        var peerID: Int64
        var serviceID: Int64
        var requestProtocol: Int
    }

    struct Examples {
        var slowTrace: TraceID?
        var slowMicros: Int64 = -1
        var failedTrace: TraceID?
        var failedStartMicros: Int64 = -1
        var failedMicros: Int64 = 0
    }

    private(set) var examples: [Key: Examples] = [:]

    /// Notes a stored call (one without a trace id, or a TCP connection, is no example).
    mutating func note(_ call: OpenCall) {
        let s = call.sample
        let f = s.facts
        guard let trace = call.traceID, f.requestProtocol != RequestProtocol.tcp.rawValue else { return }
        let key = Key(
            bucket: RollupDeltas.bucket(seconds: RollupDeltas.floorSeconds(micros: s.startMicros), tier: 60),
            reporter: f.reporter, proxyID: f.proxyID, peerID: f.peerID, serviceID: f.serviceID,
            requestProtocol: f.requestProtocol)
        let failed = CallOutcome.isError(
            responseCode: f.responseCode, grpcStatus: f.grpcStatus < 0 ? nil : f.grpcStatus,
            requestProtocol: RequestProtocol(rawValue: f.requestProtocol) ?? .http)
        examples[key, default: Examples()].add(
            trace: trace, startMicros: s.startMicros, durationMicros: s.durationMicros, failed: failed)
    }

    /// Merges the notes into `call_examples`.
    func apply(_ db: Database) throws {
        let upsert = BoundStatement(
            try db.cachedStatement(
                sql: """
                    INSERT INTO call_examples (bucket, reporter, proxy_id, peer_id, service_id, protocol, slow_trace,
                        slow_us, failed_trace, failed_ts_us, failed_us)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (bucket, reporter, proxy_id, peer_id, service_id, protocol) DO UPDATE SET
                        slow_trace = CASE WHEN excluded.slow_us > slow_us THEN excluded.slow_trace ELSE slow_trace END,
                        slow_us = max(slow_us, excluded.slow_us),
                        failed_trace = CASE WHEN excluded.failed_ts_us > failed_ts_us
                            THEN excluded.failed_trace ELSE failed_trace END,
                        failed_us = CASE WHEN excluded.failed_ts_us > failed_ts_us
                            THEN excluded.failed_us ELSE failed_us END,
                        failed_ts_us = max(failed_ts_us, excluded.failed_ts_us)
                    """), db)
        for (k, e) in examples {
            try upsert.run(
                k.bucket, k.reporter, k.proxyID, k.peerID, k.serviceID, k.requestProtocol, e.slowTrace, e.slowMicros,
                e.failedTrace, e.failedStartMicros, e.failedMicros)
        }
    }
}

extension ExampleDeltas.Examples {
    mutating func add(trace: TraceID, startMicros: Int64, durationMicros: Int64, failed: Bool) {
        if durationMicros > slowMicros {
            slowTrace = trace
            slowMicros = durationMicros
        }
        if failed, startMicros > failedStartMicros {
            failedTrace = trace
            failedStartMicros = startMicros
            failedMicros = durationMicros
        }
    }
}
