import GRDB
import Synchronization

/// Ids of `call_series` rows. Only the writer fills it, inside its transactions; a failed
/// transaction empties it.
final class CallSeriesCache: Sendable {
    private let ids = Mutex([CallFacts: Int64]())

    func reset() {
        ids.withLock { $0 = [:] }
    }

    func id(for facts: CallFacts, _ db: Database) throws -> Int64 {
        if let id = ids.withLock({ $0[facts] }) { return id }
        let arguments: StatementArguments = [
            facts.reporter, facts.proxyID, facts.peerID, facts.serviceID, facts.requestProtocol, facts.responseCode,
            facts.grpcStatus, facts.responseFlags, facts.securityPolicy, facts.paired,
        ]
        try db.cachedStatement(
            sql: """
                INSERT OR IGNORE INTO call_series (reporter, proxy_id, peer_id, service_id, protocol, response_code,
                    grpc_status, response_flags, security_policy, paired) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """
        ).execute(arguments: arguments)
        let id = try Int64.fetchOne(
            db.cachedStatement(
                sql: """
                    SELECT id FROM call_series WHERE reporter = ? AND proxy_id = ? AND peer_id = ? AND service_id = ?
                        AND protocol = ? AND response_code = ? AND grpc_status = ? AND response_flags = ?
                        AND security_policy = ? AND paired = ?
                    """), arguments: arguments)!
        ids.withLock { $0[facts] = id }
        return id
    }
}
