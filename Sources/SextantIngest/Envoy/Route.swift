internal import SextantModel

/// Which side of a call a proxy's report stands on, and the destination service it names: Istio's
/// rule, in one place for every channel (spans, JSON access logs, ALS, TCP entries).
///
/// - The upstream cluster decides the direction: `inbound|…` is the callee's report, Istio's other
///   clusters the caller's. A report whose cluster is missing or follows none of Istio's forms
///   (ALS and access logs carry no direction; plain Envoy names clusters freely) is the caller's,
///   unless the reporter knows better (a server span: `inboundByDefault`).
/// - Inbound, the service is the request's authority (or, without one, the proxy's own canonical
///   service), completed with the proxy's namespace as Kubernetes DNS would.
/// - Outbound, it is the service the cluster names; without one (Envoy answered the request
///   itself, say `503 UH` with no endpoints), the authority completed with the caller's namespace,
///   so the call lands on the same service whichever channel reported it; then the raw cluster
///   name; then `unknown`.
struct Route {
    var reporter: Reporter
    var service: ServiceRef

    /// - Parameters:
    ///   - cluster: the raw upstream cluster name, empty when the report has none.
    ///   - context: memoises cluster names and hosts across the records of one payload.
    init(
        cluster: String, authority: String?, proxy: WorkloadIdentity, inboundByDefault: Bool = false,
        context: DecodeContext? = nil
    ) {
        let key = DecodeContext.RouteInputs(
            cluster: cluster, authority: authority, proxy: proxy, inboundByDefault: inboundByDefault)
        if let known = context?.recentRoute(key) {
            self = known
            return
        }
        let parsed = cluster.isEmpty ? nil : (context.map { $0.cluster(cluster) } ?? EnvoyCluster(cluster))
        self.init(
            parsed: parsed, raw: cluster, authority: authority, proxy: proxy,
            inboundByDefault: inboundByDefault, context: context)
        context?.remember(self, for: key)
    }

    /// As `init(cluster:…)`, for a caller that has parsed the cluster already.
    init(
        parsed: EnvoyCluster?, raw: String, authority: String?, proxy: WorkloadIdentity,
        inboundByDefault: Bool = false, context: DecodeContext? = nil
    ) {
        func service(host: String) -> ServiceRef {
            context?.service(host: host, defaultNamespace: proxy.namespace)
                ?? ServiceHost.service(host: host, defaultNamespace: proxy.namespace)
        }
        let inbound = parsed.map { $0.direction == .inbound } ?? inboundByDefault
        if inbound {
            reporter = .destination
            self.service = service(host: authority ?? "\(proxy.canonicalService).\(proxy.namespace)")
        } else {
            reporter = .source
            if let named = parsed?.service {
                self.service = named
            } else if let authority, !authority.isEmpty {
                self.service = service(host: authority)
            } else if !raw.isEmpty {
                self.service = ServiceRef(host: raw, name: raw, namespace: "unknown")
            } else {
                self.service = .unknown
            }
        }
    }
}
