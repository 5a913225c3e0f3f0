/// Who a proxy (or its peer) is, in the terms of Istio's source_* and destination_* labels.
///
/// Unknown values are the string `unknown`, as Istio writes them; a canonical revision with no
/// value is `latest`.
package struct WorkloadIdentity: Sendable, Hashable {
    package var namespace: String
    package var workload: String
    package var app: String
    package var version: String
    package var canonicalService: String
    package var canonicalRevision: String
    package var principal: String
    package var cluster: String

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
        self.namespace = namespace
        self.workload = workload
        self.app = app ?? "unknown"
        self.version = version ?? "unknown"
        self.canonicalService = canonicalService ?? app ?? workload
        self.canonicalRevision = canonicalRevision ?? version ?? "latest"
        self.principal = principal
        self.cluster = cluster
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
