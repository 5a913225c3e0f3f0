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
        request(from: span, envoy: EnvoySpanTags(span.tags), nodeID: fallback, context: nil)
    }

    /// The call of a span whose Envoy tags a decoder has already picked out while reading it.
    static func request(
        from span: Span, envoy tags: EnvoySpanTags, nodeID fallback: String? = nil, context: DecodeContext?
    ) -> Request? {
        guard tags.upstreamCluster != nil || tags.nodeID != nil, let nodeID = tags.nodeID ?? fallback,
            let node = context.map({ $0.node(nodeID) }) ?? NodeIdentity.parsed(nodeID: nodeID)
        else { return nil }
        guard span.kind == .client || span.kind == .server else { return nil }
        let proxy = identity(node: node, tags: tags)
        let authority: String? = tags.httpURL.flatMap { url in
            if let context { return context.authority(ofURL: url) }
            return Self.authority(ofURL: url)
        }
        let route = Route(
            cluster: tags.upstreamCluster ?? "", authority: authority, proxy: proxy,
            inboundByDefault: span.kind == .server, context: context)
        let grpcStatus = tags.grpcStatusCode.flatMap { Int($0) }
        return Request(
            reporter: route.reporter,
            proxy: proxy,
            service: route.service,
            requestProtocol: grpcStatus != nil ? .grpc : .http,
            startMicros: span.startMicros,
            durationMicros: span.durationMicros,
            responseCode: tags.httpStatusCode.flatMap { Int($0) } ?? 0,
            grpcStatus: grpcStatus,
            responseFlags: tags.responseFlags.flatMap { $0.isEmpty ? nil : $0 } ?? "-",
            requestBytes: tags.requestSize.flatMap { Int64($0) } ?? 0,
            responseBytes: tags.responseSize.flatMap { Int64($0) } ?? 0,
            requestID: tags.requestID,
            traceID: span.traceID,
            spanID: span.spanID,
            parentSpanID: span.parentID,
            channel: .spans
        )
    }

    /// The proxy's identity from its node id, refined by the Istio tags on the span.
    static func identity(node: NodeIdentity, tags: EnvoySpanTags) -> WorkloadIdentity {
        var identity = node.workload
        if let ns = tags.istioNamespace, !ns.isEmpty { identity.namespace = ns }
        if let app = tags.canonicalService, !app.isEmpty {
            identity.canonicalService = app
            identity.app = app
        }
        if let rev = tags.canonicalRevision, !rev.isEmpty {
            identity.canonicalRevision = rev
            identity.version = rev
        }
        if let cluster = tags.clusterID, !cluster.isEmpty { identity.cluster = cluster }
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

/// The span tags that say which call an Envoy proxy's span observed.
struct EnvoySpanTags {
    var nodeID: String?
    var upstreamCluster: String?
    var httpURL: String?
    var httpStatusCode: String?
    var grpcStatusCode: String?
    var responseFlags: String?
    var requestSize: String?
    var responseSize: String?
    var requestID: String?
    var istioNamespace: String?
    var canonicalService: String?
    var canonicalRevision: String?
    var clusterID: String?

    init() {}

    /// Picks the tags out of a span's attributes.
    init(_ tags: Attributes) {
        for (key, value) in tags {
            var key = key
            key.withUTF8 { _ = take(key: UnsafeRawBufferPointer($0), value: value) }
        }
    }

    /// Keeps `value` if `key` (raw UTF-8) is one of the tags above; returns whether it was.
    @inline(__always)
    mutating func take(key: UnsafeRawBufferPointer, value: String) -> Bool {
        func equals(_ literal: StaticString) -> Bool {
            guard key.count == literal.utf8CodeUnitCount else { return false }
            return JSONReader.same(key.baseAddress!, literal.utf8Start, key.count)
        }
        switch key.count {
        case 7 where equals("node_id"): nodeID = value
        case 8 where equals("http.url"): httpURL = value
        case 12 where equals("request_size"): requestSize = value
        case 13 where equals("response_size"): responseSize = value
        case 14 where equals("response_flags"): responseFlags = value
        case 15 where equals("istio.namespace"): istioNamespace = value
        case 16 where equals("upstream_cluster"): upstreamCluster = value
        case 16 where equals("http.status_code"): httpStatusCode = value
        case 16 where equals("grpc.status_code"): grpcStatusCode = value
        case 16 where equals("istio.cluster_id"): clusterID = value
        case 17 where equals("guid:x-request-id"): requestID = value
        case 23 where equals("istio.canonical_service"): canonicalService = value
        case 24 where equals("istio.canonical_revision"): canonicalRevision = value
        default: return false
        }
        return true
    }
}
