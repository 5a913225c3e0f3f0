/// Who a proxy (or its peer) is, in the terms of Istio's source_* and destination_* labels.
///
/// Unknown values are the string `unknown`, as Istio writes them; a canonical revision with no
/// value is `latest`.
///
/// Its eight strings live in one shared, copy-on-write box: a call carries two identities and
/// decoders hand the same few out for every record of a proxy, so a copy is one retain, not eight.
package struct WorkloadIdentity: Sendable, Hashable {
    private final class Storage: @unchecked Sendable {
        // Mutated only through `unique()`, when no other identity shares the box.
        var namespace, workload, app, version, canonicalService, canonicalRevision, principal, cluster: String

        init(
            namespace: String, workload: String, app: String, version: String, canonicalService: String,
            canonicalRevision: String, principal: String, cluster: String
        ) {
            self.namespace = namespace
            self.workload = workload
            self.app = app
            self.version = version
            self.canonicalService = canonicalService
            self.canonicalRevision = canonicalRevision
            self.principal = principal
            self.cluster = cluster
        }

        func copy() -> Storage {
            Storage(
                namespace: namespace, workload: workload, app: app, version: version,
                canonicalService: canonicalService, canonicalRevision: canonicalRevision, principal: principal,
                cluster: cluster)
        }
    }

    private var storage: Storage

    private mutating func unique() -> Storage {
        if !isKnownUniquelyReferenced(&storage) { storage = storage.copy() }
        return storage
    }

    package var namespace: String {
        get { storage.namespace }
        set { unique().namespace = newValue }
    }
    package var workload: String {
        get { storage.workload }
        set { unique().workload = newValue }
    }
    package var app: String {
        get { storage.app }
        set { unique().app = newValue }
    }
    package var version: String {
        get { storage.version }
        set { unique().version = newValue }
    }
    package var canonicalService: String {
        get { storage.canonicalService }
        set { unique().canonicalService = newValue }
    }
    package var canonicalRevision: String {
        get { storage.canonicalRevision }
        set { unique().canonicalRevision = newValue }
    }
    package var principal: String {
        get { storage.principal }
        set { unique().principal = newValue }
    }
    package var cluster: String {
        get { storage.cluster }
        set { unique().cluster = newValue }
    }

    package init(
        namespace: String,
        workload: String,
        app: String? = nil,
        version: String? = nil,
        canonicalService: String? = nil,
        canonicalRevision: String? = nil,
        principal: String = "unknown",
        cluster: String = "unknown"
    ) {
        storage = Storage(
            namespace: namespace, workload: workload, app: app ?? "unknown", version: version ?? "unknown",
            canonicalService: canonicalService ?? app ?? workload,
            canonicalRevision: canonicalRevision ?? version ?? "latest", principal: principal, cluster: cluster)
    }

    package static func == (lhs: WorkloadIdentity, rhs: WorkloadIdentity) -> Bool {
        let l = lhs.storage
        let r = rhs.storage
        return l === r
            || (l.namespace == r.namespace && l.workload == r.workload && l.app == r.app && l.version == r.version
                && l.canonicalService == r.canonicalService && l.canonicalRevision == r.canonicalRevision
                && l.principal == r.principal && l.cluster == r.cluster)
    }

    package func hash(into hasher: inout Hasher) {
        let s = storage
        hasher.combine(s.namespace)
        hasher.combine(s.workload)
        hasher.combine(s.app)
        hasher.combine(s.version)
        hasher.combine(s.canonicalService)
        hasher.combine(s.canonicalRevision)
        hasher.combine(s.principal)
        hasher.combine(s.cluster)
    }

    /// A caller or callee Sextant cannot name (no sidecar, or not reported).
    package static let unknown = WorkloadIdentity(
        namespace: "unknown", workload: "unknown", app: "unknown", version: "unknown",
        canonicalService: "unknown", canonicalRevision: "latest"
    )

    /// Whether this names a real workload.
    package var isKnown: Bool {
        workload != "unknown" && !workload.isEmpty
    }
}
