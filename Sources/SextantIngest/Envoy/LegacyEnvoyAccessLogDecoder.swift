internal import Foundation
package import SextantModel

/// Decodes Envoy JSON access-log lines in Istio's JSON format (newline-delimited objects).
///
/// A file line carries no proxy identity, so the uploader names the proxy (`defaultProxy`, from
/// `?node=` or `--node`); a line may instead name it with a `node_id` key, or with the Kubernetes
/// keys a log shipper adds (`kubernetes.pod_name`/`namespace_name`/`labels`, or `k8s.pod.name`,
/// `k8s.namespace.name`, `k8s.deployment.name`). Bad lines are reported and the rest kept.
/// Format: https://istio.io/latest/docs/tasks/observability/logs/access-log/
package struct LegacyEnvoyAccessLogDecoder: Sendable {
    package var defaultProxy: WorkloadIdentity?

    package init(defaultProxy: WorkloadIdentity? = nil) {
        self.defaultProxy = defaultProxy
    }

    /// The outcome of one upload.
    package struct Result: Sendable {
        package var batch = IngestBatch()
        /// Lines that were valid but describe no L7 call (TCP proxy entries).
        package var skippedTCP = 0
    }

    /// Decodes every line of `body`; `firstLine` numbers the lines for error messages.
    package func decode(lines body: [UInt8], firstLine: Int = 1) -> Result {
        var result = Result()
        let decoder = JSONDecoder()
        body.withUnsafeBytes { raw in
            let bytes = raw.bindMemory(to: UInt8.self)
            var lineNumber = firstLine
            var start = 0
            while start < bytes.count {
                var end = start
                while end < bytes.count, bytes[end] != 0x0A { end += 1 }
                var trimmedEnd = end
                while trimmedEnd > start, bytes[trimmedEnd - 1] == 0x0D || bytes[trimmedEnd - 1] == 0x20 {
                    trimmedEnd -= 1
                }
                if trimmedEnd > start {
                    let line = Data(bytes: raw.baseAddress! + start, count: trimmedEnd - start)
                    decodeLine(line, number: lineNumber, decoder: decoder, into: &result)
                }
                lineNumber += 1
                start = end + 1
            }
        }
        return result
    }

    private func decodeLine(_ line: Data, number: Int, decoder: JSONDecoder, into result: inout Result) {
        let location = "line \(number)"
        let entry: LegacyAccessLogLineJSON
        do {
            entry = try decoder.decode(LegacyAccessLogLineJSON.self, from: line)
        } catch {
            result.batch.rejected.append(
                RecordError(location: location, message: LegacyZipkinV2Decoder.describe(error)))
            return
        }
        do throws(RecordError) {
            if let request = try entry.request(defaultProxy: defaultProxy, location: location) {
                result.batch.requests.append(request)
            } else {
                result.skippedTCP += 1
            }
        } catch {
            result.batch.rejected.append(error)
        }
    }
}

/// One JSON access-log line; keys are Istio's JSON format (reference: istio-telemetry §2.2).
struct LegacyAccessLogLineJSON: Decodable {
    struct Kubernetes: Decodable {
        var pod_name: String?
        var namespace_name: String?
        var labels: [String: String]?
    }

    var start_time: JSONScalar?
    var method: JSONScalar?
    var path: JSONScalar?
    var `protocol`: JSONScalar?
    var response_code: JSONScalar?
    var response_flags: JSONScalar?
    var bytes_received: JSONScalar?
    var bytes_sent: JSONScalar?
    var duration: JSONScalar?
    var request_id: JSONScalar?
    var authority: JSONScalar?
    var upstream_host: JSONScalar?
    var upstream_cluster: JSONScalar?
    var upstream_local_address: JSONScalar?
    var downstream_local_address: JSONScalar?
    var downstream_remote_address: JSONScalar?
    var trace_id: JSONScalar?
    var grpc_status: JSONScalar?
    var node_id: String?
    var kubernetes: Kubernetes?
    var podName: String?
    var namespaceName: String?
    var deploymentName: String?

    enum CodingKeys: String, CodingKey {
        case start_time, method, path, `protocol`, response_code, response_flags, bytes_received, bytes_sent
        case duration, request_id, authority, upstream_host, upstream_cluster, upstream_local_address
        case downstream_local_address, downstream_remote_address, trace_id, grpc_status, node_id, kubernetes
        case podName = "k8s.pod.name"
        case namespaceName = "k8s.namespace.name"
        case deploymentName = "k8s.deployment.name"
    }

    /// A line from string attributes (Envoy's OpenTelemetry access logger writes the same keys).
    init(attributes: [String: String]) {
        func scalar(_ key: String) -> JSONScalar? { attributes[key].map(JSONScalar.string) }
        start_time = scalar("start_time")
        method = scalar("method")
        path = scalar("path")
        `protocol` = scalar("protocol")
        response_code = scalar("response_code")
        response_flags = scalar("response_flags")
        bytes_received = scalar("bytes_received")
        bytes_sent = scalar("bytes_sent")
        duration = scalar("duration")
        request_id = scalar("request_id")
        authority = scalar("authority")
        upstream_host = scalar("upstream_host")
        upstream_cluster = scalar("upstream_cluster")
        upstream_local_address = scalar("upstream_local_address")
        downstream_local_address = scalar("downstream_local_address")
        downstream_remote_address = scalar("downstream_remote_address")
        trace_id = scalar("trace_id")
        grpc_status = scalar("grpc_status")
        node_id = attributes["node_id"]
    }

    func proxy(defaultProxy: WorkloadIdentity?) -> WorkloadIdentity? {
        if let nodeID = node_id, let node = NodeIdentity(nodeID: nodeID) { return node.workload }
        if let k8s = kubernetes, let pod = k8s.pod_name {
            var identity = NodeIdentity.workload(pod: pod, namespace: k8s.namespace_name ?? "unknown")
            let labels = k8s.labels ?? [:]
            if let app = labels["service.istio.io/canonical-name"] ?? labels["app"] {
                identity.app = labels["app"] ?? app
                identity.canonicalService = app
            }
            if let version = labels["service.istio.io/canonical-revision"] ?? labels["version"] {
                identity.version = labels["version"] ?? version
                identity.canonicalRevision = version
            }
            return identity
        }
        if let pod = podName {
            var identity = NodeIdentity.workload(pod: pod, namespace: namespaceName ?? "unknown")
            if let deployment = deploymentName {
                identity.workload = deployment
                let (app, version) = NodeIdentity.appAndVersion(workload: deployment)
                identity.app = app
                identity.canonicalService = app
                identity.version = version ?? "unknown"
                identity.canonicalRevision = version ?? "latest"
            }
            return identity
        }
        return defaultProxy
    }

    /// The call this line records; nil for a TCP proxy entry (no method, no protocol).
    func request(defaultProxy: WorkloadIdentity?, location: String) throws(RecordError) -> Request? {
        func fail(_ message: String) -> RecordError { RecordError(location: location, message: message) }
        guard let proxy = proxy(defaultProxy: defaultProxy) else {
            throw fail("no proxy identity: upload with ?node=<Envoy node id> or add a 'node_id' key")
        }
        guard let startText = start_time?.text else { throw fail("missing 'start_time'") }
        guard let start = Timestamp.micros(rfc3339: startText) else {
            throw fail("'start_time' is not an RFC 3339 timestamp: '\(startText.prefix(40))'")
        }
        if method?.text == nil, self.protocol?.text == nil {
            return nil
        }
        let durationMillis = duration?.integer ?? 0
        guard durationMillis >= 0 else {
            throw RecordError(location: location, message: "'duration' must not be negative", reason: .negativeDuration)
        }
        let (durationMicros, overflow) = durationMillis.multipliedReportingOverflow(by: 1000)
        guard !overflow else { throw fail("'duration' \(durationMillis) ms is too long") }
        let code = response_code?.integer ?? 0
        guard (0...999).contains(code) else { throw fail("'response_code' \(code) is not an HTTP status") }
        let cluster = upstream_cluster?.text.flatMap(EnvoyCluster.init)
        let inbound = cluster?.direction == .inbound
        let authority = self.authority?.text
        let service: ServiceRef
        if inbound {
            service = ServiceHost.service(
                host: authority ?? "\(proxy.canonicalService).\(proxy.namespace)", defaultNamespace: proxy.namespace)
        } else if let s = cluster?.service {
            service = s
        } else if let authority {
            service = ServiceRef(host: authority, name: authority, namespace: "unknown")
        } else {
            service = .unknown
        }
        let grpcStatus = grpc_status?.integer.map { Int($0) }
        return Request(
            reporter: inbound ? .destination : .source,
            proxy: proxy,
            service: service,
            requestProtocol: grpcStatus != nil ? .grpc : .http,
            startMicros: start,
            durationMicros: durationMicros,
            responseCode: Int(code),
            grpcStatus: grpcStatus,
            responseFlags: response_flags?.text ?? "-",
            requestBytes: bytes_received?.integer ?? 0,
            responseBytes: bytes_sent?.integer ?? 0,
            requestID: request_id?.text,
            traceID: trace_id?.text.flatMap { TraceID(hex: $0) },
            localAddress: inbound ? downstream_local_address?.text : upstream_local_address?.text,
            remoteAddress: inbound ? downstream_remote_address?.text : upstream_host?.text,
            channel: .accessLog
        )
    }
}
