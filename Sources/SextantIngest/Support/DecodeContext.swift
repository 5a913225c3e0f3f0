internal import SextantModel

/// What one decode call learns once and reuses for every record of its payload: interned strings
/// and the identities that node ids, cluster names and hosts resolve to.
///
/// A payload comes from one proxy, so its records repeat the same node id, clusters and
/// services; resolving each once keeps a record's cost to the bytes that are its own.
final class DecodeContext {
    let strings = InternTable()
    /// The keys of the object being read (reused from record to record).
    var keys = KeySet()
    private var nodes: [String: NodeIdentity?] = [:]
    private var clusters: [String: EnvoyCluster?] = [:]
    private var services: [ServiceKey: ServiceRef] = [:]
    private var authorities: [String: String?] = [:]
    /// Bytes for lowercasing a token before it is interned.
    private var scratch: [UInt8] = []

    private struct ServiceKey: Hashable {
        var host: String
        var namespace: String?
    }

    /// Entries each memo keeps at most; a payload of distinct values cannot grow them further.
    private static let memoLimit = 1024

    func node(_ nodeID: String) -> NodeIdentity? {
        if let known = nodes[nodeID] { return known }
        let parsed = NodeIdentity(nodeID: nodeID)
        if nodes.count < Self.memoLimit { nodes[nodeID] = parsed }
        return parsed
    }

    func cluster(_ raw: String) -> EnvoyCluster? {
        if let known = clusters[raw] { return known }
        let parsed = EnvoyCluster(raw)
        if clusters.count < Self.memoLimit { clusters[raw] = parsed }
        return parsed
    }

    func service(host: String, defaultNamespace: String?) -> ServiceRef {
        let key = ServiceKey(host: host, namespace: defaultNamespace)
        if let known = services[key] { return known }
        let resolved = ServiceHost.service(host: host, defaultNamespace: defaultNamespace)
        if services.count < Self.memoLimit { services[key] = resolved }
        return resolved
    }

    func authority(ofURL url: String) -> String? {
        if let known = authorities[url] { return known }
        let found = EnvoySpanMapper.authority(ofURL: url)
        if authorities.count < Self.memoLimit { authorities[url] = found }
        return found
    }

    /// The string of an ASCII token lowercased (interned); nil when the bytes are not all ASCII.
    func lowercasedASCII(_ bytes: UnsafeRawBufferPointer) -> String? {
        var upper = false
        for byte in bytes {
            if byte >= 0x80 { return nil }
            if byte >= 0x41 && byte <= 0x5A { upper = true }
        }
        guard upper else { return strings.string(bytes) }
        scratch.removeAll(keepingCapacity: true)
        for byte in bytes { scratch.append(byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte) }
        return scratch.withUnsafeBytes { strings.string($0) }
    }
}
