package import SextantModel

/// Turns a span written by an Envoy sidecar into the call it observed.
///
/// Envoy's tracers tag each span with the proxy's `node_id` and the `upstream_cluster`; Istio
/// adds `istio.canonical_service`, `istio.canonical_revision` and `istio.namespace`. Spans
/// without `node_id` are application spans and map to no `Request`.
package enum EnvoySpanMapper {
    /// - Parameter nodeID: the proxy's node id when the span itself lacks the `node_id` tag (the
    ///   OpenTelemetry tracer puts it in the resource's `service.instance.id`).
    package static func request(from span: Span, nodeID fallback: String? = nil) -> Request? {
        let tags = span.tags
        guard tags["upstream_cluster"] != nil || tags["node_id"] != nil,
            let nodeID = tags["node_id"] ?? fallback, let node = NodeIdentity(nodeID: nodeID)
        else { return nil }
        guard span.kind == .client || span.kind == .server else { return nil }
        let proxy = identity(node: node, tags: tags)
        let cluster = tags["upstream_cluster"].flatMap(EnvoyCluster.init)
        let inbound: Bool
        switch cluster?.direction {
        case .inbound?: inbound = true
        case .outbound?, .special?: inbound = false
        case nil: inbound = span.kind == .server
        }
        let authority = tags["http.url"].flatMap(authority(ofURL:))
        let service: ServiceRef
        if inbound {
            service = ServiceHost.service(
                host: authority ?? "\(proxy.canonicalService).\(proxy.namespace)", defaultNamespace: proxy.namespace)
        } else if let s = cluster?.service {
            service = s
        } else {
            service = authority.map { ServiceRef(host: $0, name: $0, namespace: "unknown") } ?? .unknown
        }
        let grpcStatus = tags["grpc.status_code"].flatMap { Int($0) }
        return Request(
            reporter: inbound ? .destination : .source,
            proxy: proxy,
            service: service,
            requestProtocol: grpcStatus != nil ? .grpc : .http,
            startMicros: span.startMicros,
            durationMicros: span.durationMicros,
            responseCode: tags["http.status_code"].flatMap { Int($0) } ?? 0,
            grpcStatus: grpcStatus,
            responseFlags: tags["response_flags"].flatMap { $0.isEmpty ? nil : $0 } ?? "-",
            requestBytes: tags["request_size"].flatMap { Int64($0) } ?? 0,
            responseBytes: tags["response_size"].flatMap { Int64($0) } ?? 0,
            requestID: tags["guid:x-request-id"],
            traceID: span.traceID,
            spanID: span.spanID,
            parentSpanID: span.parentID,
            channel: .spans
        )
    }

    /// The proxy's identity from its node id, refined by the Istio tags on the span.
    static func identity(node: NodeIdentity, tags: [String: String]) -> WorkloadIdentity {
        var identity = node.workload
        if let ns = tags["istio.namespace"], !ns.isEmpty { identity.namespace = ns }
        if let app = tags["istio.canonical_service"], !app.isEmpty {
            identity.canonicalService = app
            identity.app = app
        }
        if let rev = tags["istio.canonical_revision"], !rev.isEmpty {
            identity.canonicalRevision = rev
            identity.version = rev
        }
        if let cluster = tags["istio.cluster_id"], !cluster.isEmpty { identity.cluster = cluster }
        return identity
    }

    /// `http://details:9080/details/0` → `details:9080`.
    static func authority(ofURL url: String) -> String? {
        guard let schemeEnd = url.range(of: "://") else { return nil }
        let rest = url[schemeEnd.upperBound...]
        let end = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? rest.endIndex
        let authority = rest[..<end]
        return authority.isEmpty ? nil : String(authority)
    }
}
