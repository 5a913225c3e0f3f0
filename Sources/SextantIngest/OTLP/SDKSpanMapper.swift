package import SextantModel

/// Calls observed by application (SDK) spans, read the way the OpenTelemetry Collector's
/// servicegraph connector reads them: a SERVER/CONSUMER span is the callee's report, a
/// CLIENT/PRODUCER span the caller's. Pairing (client span id = server span's parent) names each
/// side's workload; a client span nobody answers names its peer from its attributes, which makes
/// a virtual node for an uninstrumented database or external API.
package enum SDKSpanMapper {
    package static func request(from span: Span, proxy: WorkloadIdentity) -> CallReport? {
        let tags = span.tags
        let reporter: Reporter
        switch span.kind {
        case .server, .consumer: reporter = .destination
        case .client, .producer: reporter = .source
        case .unspecified: return nil
        }
        let service: ServiceRef
        if reporter == .destination {
            service = ServiceRef(host: proxy.canonicalService, name: proxy.canonicalService, namespace: proxy.namespace)
        } else {
            let peer = peer(of: tags) ?? "unknown"
            service = ServiceRef(host: peer, name: peer, namespace: "unknown")
        }
        let httpCode = (tags["http.response.status_code"] ?? tags["http.status_code"]).flatMap { Int($0) }
        let grpcStatus = tags["rpc.grpc.status_code"].flatMap { Int($0) }
        // Without an HTTP code the span's status decides: ERROR counts as a failed call.
        let code = httpCode ?? (span.isError ? 500 : 200)
        return CallReport(
            reporter: reporter,
            proxy: proxy,
            service: service,
            requestProtocol: grpcStatus != nil ? .grpc : .http,
            startMicros: span.startMicros,
            durationMicros: span.durationMicros,
            responseCode: code,
            grpcStatus: grpcStatus,
            traceID: span.traceID,
            spanID: span.spanID,
            parentSpanID: span.parentID,
            channel: .spans
        )
    }

    /// The peer a client span names: `peer.service`, else the database (`db.namespace`/`db.name`,
    /// then `db.system`), else `server.address` (`net.peer.name`).
    package static func peer(of tags: Attributes) -> String? {
        for key in ["peer.service", "db.namespace", "db.name", "db.system.name", "db.system", "server.address", "net.peer.name"] {
            if let value = tags[key], !value.isEmpty { return value }
        }
        return nil
    }
}
