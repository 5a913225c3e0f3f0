import GRDB
import SextantModel
import Synchronization

struct WorkloadKey: Hashable {
    var namespace: String
    var workload: String
}

extension WorkloadIdentity {
    /// Whether `other` knows something about the same workload that this does not.
    func learns(from other: WorkloadIdentity) -> Bool {
        func unknown(_ v: String) -> Bool { v == "unknown" || v.isEmpty }
        return (unknown(app) && !unknown(other.app)) || (unknown(version) && !unknown(other.version))
            || ((unknown(canonicalService) || canonicalService == workload) && !unknown(other.canonicalService)
                && other.canonicalService != canonicalService)
            || ((unknown(canonicalRevision) || canonicalRevision == "latest") && !unknown(other.canonicalRevision)
                && other.canonicalRevision != "latest")
            || (unknown(principal) && !unknown(other.principal)) || (unknown(cluster) && !unknown(other.cluster))
    }
}

/// Ids of interned workloads and services. Only the writer fills it, inside its transactions;
/// ids never change once committed, and a failed transaction empties the cache.
final class DictionaryCache: Sendable {
    private struct State {
        var workloads: [WorkloadKey: (Int64, WorkloadIdentity)] = [:]
        var services: [String: Int64] = [:]
        /// The identities asked for lately and their ids, newest first: a batch's reports mostly
        /// come from one proxy and go to a few peers, whose identities' strings are the decoder's
        /// same copies, so comparing them is cheaper than hashing them (and an identity that
        /// taught nothing new once teaches nothing the next time).
        var recentWorkloads: [(identity: WorkloadIdentity, id: Int64)] = []
        var lastService: (host: String, id: Int64)?
    }

    private let state = Mutex(State())
    private static let recentWorkloads = 4

    func reset() {
        state.withLock { $0 = State() }
    }

    /// The id of a workload, recording what `identity` adds to what is known of it.
    func workloadID(_ identity: WorkloadIdentity, _ db: Database) throws -> Int64 {
        let key = WorkloadKey(namespace: identity.namespace, workload: identity.workload)
        let known: Int64? = state.withLock { state in
            if let recent = state.recentWorkloads.first(where: { $0.identity == identity }) { return recent.id }
            guard let (id, known) = state.workloads[key], !known.learns(from: identity) else { return nil }
            if state.recentWorkloads.count == Self.recentWorkloads { state.recentWorkloads.removeLast() }
            state.recentWorkloads.insert((identity, id), at: 0)
            return id
        }
        if let known { return known }
        let row = try Row.fetchOne(
            db.cachedStatement(
                sql: """
                    INSERT INTO workloads (namespace, workload, app, version, canonical_service,
                        canonical_revision, principal, cluster) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (namespace, workload) DO UPDATE SET
                        app = iif(app IN ('unknown', ''), excluded.app, app),
                        version = iif(version IN ('unknown', ''), excluded.version, version),
                        canonical_service = iif(canonical_service IN ('unknown', '') OR canonical_service = workload,
                            excluded.canonical_service, canonical_service),
                        canonical_revision = iif(canonical_revision IN ('latest', 'unknown', ''),
                            excluded.canonical_revision, canonical_revision),
                        principal = iif(principal IN ('unknown', ''), excluded.principal, principal),
                        cluster = iif(cluster IN ('unknown', ''), excluded.cluster, cluster)
                    RETURNING id, app, version, canonical_service, canonical_revision, principal, cluster
                    """),
            arguments: [
                identity.namespace, identity.workload, identity.app, identity.version, identity.canonicalService,
                identity.canonicalRevision, identity.principal, identity.cluster,
            ])!
        let id: Int64 = row[0]
        let merged = WorkloadIdentity(
            namespace: identity.namespace, workload: identity.workload, app: row[1], version: row[2],
            canonicalService: row[3], canonicalRevision: row[4], principal: row[5], cluster: row[6])
        state.withLock { $0.workloads[key] = (id, merged) }
        return id
    }

    func serviceID(_ service: ServiceRef, _ db: Database) throws -> Int64 {
        let known: Int64? = state.withLock { state in
            if let last = state.lastService, last.host == service.host { return last.id }
            guard let id = state.services[service.host] else { return nil }
            state.lastService = (service.host, id)
            return id
        }
        if let known { return known }
        try db.cachedStatement(sql: "INSERT OR IGNORE INTO services (host, name, namespace) VALUES (?, ?, ?)")
            .execute(arguments: [service.host, service.name, service.namespace])
        let id = try Int64.fetchOne(
            db.cachedStatement(sql: "SELECT id FROM services WHERE host = ?"), arguments: [service.host])!
        state.withLock { $0.services[service.host] = id }
        return id
    }
}
