package import SextantModel

/// An Envoy node as Istio names it: `sidecar~10.1.2.3~productpage-v1-abc-xyz.default~default.svc.cluster.local`.
package struct NodeIdentity: Sendable, Hashable {
    /// `sidecar`, `router`, `waypoint`, `ztunnel`.
    package var type: String
    package var ip: String
    package var pod: String
    package var namespace: String
    package var workload: WorkloadIdentity

    /// Parses an Istio node id; nil when it has not the four `~`-separated parts.
    ///
    /// The workload name is the pod's owner, recovered from Kubernetes' pod naming
    /// (`<deployment>-<replicaset hash>-<suffix>`, `<statefulset>-<ordinal>`); app and version come
    /// from a `<app>-v<N>` workload name. Callers with better facts (node metadata, Istio span tags,
    /// log-shipper labels) override them.
    package init?(nodeID: String) {
        let parts = nodeID.split(separator: "~", omittingEmptySubsequences: false)
        guard parts.count == 4, !parts[2].isEmpty else { return nil }
        type = String(parts[0])
        ip = String(parts[1])
        let instance = parts[2]
        var namespace = "unknown"
        var pod = String(instance)
        if let dot = instance.lastIndex(of: ".") {
            pod = String(instance[..<dot])
            namespace = String(instance[instance.index(after: dot)...])
        } else if let first = parts[3].split(separator: ".").first {
            namespace = String(first)
        }
        self.pod = pod
        self.namespace = namespace
        workload = Self.workload(pod: pod, namespace: namespace)
    }

    /// Names `identity`'s workload, with the app and version (canonical service and revision) its
    /// name implies: `reviews-v2` → app `reviews`, version `v2`.
    package static func name(_ identity: inout WorkloadIdentity, workload: String) {
        identity.workload = workload
        let (app, version) = appAndVersion(workload: workload)
        identity.app = app
        identity.canonicalService = app
        identity.version = version ?? "unknown"
        identity.canonicalRevision = version ?? "latest"
    }

    /// The identity a pod name implies.
    package static func workload(pod: String, namespace: String) -> WorkloadIdentity {
        let name = ownerName(pod: pod)
        let (app, version) = appAndVersion(workload: name)
        return WorkloadIdentity(namespace: namespace, workload: name, app: app, version: version)
    }

    /// `reviews-v2-7d8f9c6b4d-x2k9p` → `reviews-v2`; `web-0` → `web`; other names unchanged.
    package static func ownerName(pod: String) -> String {
        var parts = pod.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count >= 2 else { return pod }
        let last = parts[parts.count - 1]
        if last.count == 5, last.allSatisfy(isPodSuffixCharacter) {
            parts.removeLast()
            if parts.count >= 2, let hash = parts.last, (6...10).contains(hash.count),
                hash.allSatisfy(isPodSuffixCharacter)
            {
                parts.removeLast()
            }
            return parts.joined(separator: "-")
        }
        if last.allSatisfy(\.isNumber) {
            parts.removeLast()
            return parts.joined(separator: "-")
        }
        return pod
    }

    /// `reviews-v2` → (`reviews`, `v2`); otherwise (workload, nil).
    package static func appAndVersion(workload: String) -> (String, String?) {
        guard let dash = workload.lastIndex(of: "-") else { return (workload, nil) }
        let suffix = workload[workload.index(after: dash)...]
        guard suffix.count >= 2, suffix.first == "v", suffix.dropFirst().allSatisfy(\.isNumber) else {
            return (workload, nil)
        }
        return (String(workload[..<dash]), String(suffix))
    }

    /// Kubernetes generates pod suffixes from consonants and digits that avoid words.
    private static func isPodSuffixCharacter(_ c: Character) -> Bool {
        c.isASCII && (c.isLowercase || c.isNumber)
    }
}

extension NodeIdentity {
    /// `NodeIdentity(nodeID:)`, remembered process-wide: a mesh has a bounded set of proxies, and
    /// every request, stream and payload of one names the same few node ids again.
    package static func parsed(nodeID: String) -> NodeIdentity? {
        known.value(nodeID) { NodeIdentity(nodeID: $0) }
    }

    private static let known = SharedMemo<String, NodeIdentity?>()
}
