internal import SextantModel

/// Direction and destination service of an entry, from its cluster (ALS carries no direction).
struct Route {
    var reporter: Reporter
    var service: ServiceRef

    /// - Parameter context: memoises cluster names and hosts across the entries of one message.
    init(cluster: String, authority: String?, proxy: WorkloadIdentity, context: DecodeContext? = nil) {
        let parsed = cluster.isEmpty ? nil : (context.map { $0.cluster(cluster) } ?? EnvoyCluster(cluster))
        if parsed?.direction == .inbound {
            reporter = .destination
            let host = authority ?? "\(proxy.canonicalService).\(proxy.namespace)"
            service = context?.service(host: host, defaultNamespace: proxy.namespace)
                ?? ServiceHost.service(host: host, defaultNamespace: proxy.namespace)
        } else {
            reporter = .source
            service = parsed?.service ?? authority.map { ServiceRef(host: $0, name: $0, namespace: "unknown") }
                ?? (cluster.isEmpty ? .unknown : ServiceRef(host: cluster, name: cluster, namespace: "unknown"))
        }
    }
}
