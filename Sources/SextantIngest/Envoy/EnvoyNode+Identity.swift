internal import SwiftProtobuf
package import SextantModel
package import SextantWire

extension Envoy_Config_Core_V3_Node {
    /// The proxy's identity from Istio's node metadata (`NAMESPACE`, `WORKLOAD_NAME`, `LABELS`,
    /// `CLUSTER_ID`), falling back to what the node id implies.
    package var workloadIdentity: WorkloadIdentity? {
        let fields = metadata.fields
        func text(_ key: String) -> String? {
            if case .stringValue(let s)? = fields[key]?.kind, !s.isEmpty { return s }
            return nil
        }
        var labels: [String: String] = [:]
        if case .structValue(let s)? = fields["LABELS"]?.kind {
            for (key, value) in s.fields {
                if case .stringValue(let v)? = value.kind { labels[key] = v }
            }
        }
        let parsed = NodeIdentity.parsed(nodeID: id)
        guard var identity = parsed?.workload ?? text("WORKLOAD_NAME").map({
            WorkloadIdentity(namespace: text("NAMESPACE") ?? "unknown", workload: $0)
        }) else { return nil }
        if let ns = text("NAMESPACE") { identity.namespace = ns }
        if let workload = text("WORKLOAD_NAME") { NodeIdentity.name(&identity, workload: workload) }
        if let app = labels["app"] ?? labels["app.kubernetes.io/name"] { identity.app = app }
        if let version = labels["version"] ?? labels["app.kubernetes.io/version"] { identity.version = version }
        identity.canonicalService = labels["service.istio.io/canonical-name"] ?? labels["app"] ?? identity.canonicalService
        identity.canonicalRevision = labels["service.istio.io/canonical-revision"] ?? labels["version"]
            ?? identity.canonicalRevision
        if let cluster = text("CLUSTER_ID") { identity.cluster = cluster }
        return identity
    }
}

extension Envoy_Config_Core_V3_Address {
    /// `ip:port` of a socket address; nil otherwise.
    var text: String? {
        guard case .socketAddress(let socket)? = address, !socket.address.isEmpty else { return nil }
        switch socket.portSpecifier {
        case .portValue(let port)?:
            return socket.address.contains(":") ? "[\(socket.address)]:\(port)" : "\(socket.address):\(port)"
        case .namedPort(let name)?: return "\(socket.address):\(name)"
        case nil: return socket.address
        }
    }
}
