internal import SextantModel

/// One Envoy access-log entry in Istio's JSON keys (reference: istio-telemetry §2.2), however it
/// arrived: a JSON file line, or the attributes of Envoy's OpenTelemetry access logger.
///
/// `record` holds the rules: which proxy wrote it, whether it is an HTTP call or a TCP
/// connection, its direction and destination service.
struct AccessLogLine {
    /// The keys that carry a scalar the model uses.
    enum Field: CaseIterable {
        case startTime, method, `protocol`, responseCode, responseFlags, bytesReceived, bytesSent, duration
        case requestID, authority, upstreamHost, upstreamCluster, upstreamLocalAddress, downstreamLocalAddress
        case downstreamRemoteAddress, traceID, grpcStatus

        /// The key as Istio's JSON format spells it.
        var key: String {
            switch self {
            case .startTime: "start_time"
            case .method: "method"
            case .protocol: "protocol"
            case .responseCode: "response_code"
            case .responseFlags: "response_flags"
            case .bytesReceived: "bytes_received"
            case .bytesSent: "bytes_sent"
            case .duration: "duration"
            case .requestID: "request_id"
            case .authority: "authority"
            case .upstreamHost: "upstream_host"
            case .upstreamCluster: "upstream_cluster"
            case .upstreamLocalAddress: "upstream_local_address"
            case .downstreamLocalAddress: "downstream_local_address"
            case .downstreamRemoteAddress: "downstream_remote_address"
            case .traceID: "trace_id"
            case .grpcStatus: "grpc_status"
            }
        }
    }

    /// The keys a log shipper such as Fluent Bit adds.
    struct Kubernetes {
        var podName: String?
        var namespaceName: String?
        var labels: [String: String]?
    }

    var startTime, method, `protocol`, responseCode, responseFlags, bytesReceived, bytesSent: JSONScalar?
    var duration, requestID, authority, upstreamHost, upstreamCluster, upstreamLocalAddress: JSONScalar?
    var downstreamLocalAddress, downstreamRemoteAddress, traceID, grpcStatus: JSONScalar?
    /// `start_time` and `trace_id` when a reader took them straight from their bytes.
    var parsedStart: Int64?
    var parsedTrace: TraceID?
    var nodeID: String?
    var kubernetes: Kubernetes?
    var podName: String?
    var namespaceName: String?
    var deploymentName: String?
    /// The first thing wrong with the entry's shape (a value of the wrong kind, bad UTF-8).
    var problem: String?

    init() {}

    /// An entry from string attributes (Envoy's OpenTelemetry access logger writes the same keys).
    init(attributes: Attributes) {
        for field in Field.allCases {
            self[field] = attributes[field.key].map(JSONScalar.string)
        }
        nodeID = attributes["node_id"]
    }

    subscript(field: Field) -> JSONScalar? {
        get {
            switch field {
            case .startTime: startTime
            case .method: method
            case .protocol: self.protocol
            case .responseCode: responseCode
            case .responseFlags: responseFlags
            case .bytesReceived: bytesReceived
            case .bytesSent: bytesSent
            case .duration: duration
            case .requestID: requestID
            case .authority: authority
            case .upstreamHost: upstreamHost
            case .upstreamCluster: upstreamCluster
            case .upstreamLocalAddress: upstreamLocalAddress
            case .downstreamLocalAddress: downstreamLocalAddress
            case .downstreamRemoteAddress: downstreamRemoteAddress
            case .traceID: traceID
            case .grpcStatus: grpcStatus
            }
        }
        set {
            switch field {
            case .startTime: startTime = newValue
            case .method: method = newValue
            case .protocol: self.protocol = newValue
            case .responseCode: responseCode = newValue
            case .responseFlags: responseFlags = newValue
            case .bytesReceived: bytesReceived = newValue
            case .bytesSent: bytesSent = newValue
            case .duration: duration = newValue
            case .requestID: requestID = newValue
            case .authority: authority = newValue
            case .upstreamHost: upstreamHost = newValue
            case .upstreamCluster: upstreamCluster = newValue
            case .upstreamLocalAddress: upstreamLocalAddress = newValue
            case .downstreamLocalAddress: downstreamLocalAddress = newValue
            case .downstreamRemoteAddress: downstreamRemoteAddress = newValue
            case .traceID: traceID = newValue
            case .grpcStatus: grpcStatus = newValue
            }
        }
    }

    /// The proxy that wrote the entry: its `node_id`, the shipper's Kubernetes keys, else the uploader's.
    func proxy(defaultProxy: WorkloadIdentity?, context: DecodeContext?) -> WorkloadIdentity? {
        if let nodeID, let node = context.map({ $0.node(nodeID) }) ?? NodeIdentity.parsed(nodeID: nodeID) {
            return node.workload
        }
        if let k8s = kubernetes, let pod = k8s.podName {
            var identity = NodeIdentity.workload(pod: pod, namespace: k8s.namespaceName ?? "unknown")
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
            if let deployment = deploymentName { NodeIdentity.name(&identity, workload: deployment) }
            return identity
        }
        return defaultProxy
    }

    /// Appends the call or TCP connection this entry records to `batch` (built in place: a
    /// record handed back would be copied, a retain and a release for each of its strings).
    /// - Parameter location: where the entry stands, for error messages (made only when one is thrown).
    func record(
        defaultProxy: WorkloadIdentity?, location: @autoclosure () -> String, context: DecodeContext? = nil,
        channel: IngestChannel = .accessLog, into batch: inout IngestBatch
    ) throws(RecordError) {
        func fail(_ message: String) -> RecordError { RecordError(location: location(), message: message) }
        guard let proxy = proxy(defaultProxy: defaultProxy, context: context) else {
            throw fail("no proxy identity: upload with ?node=<Envoy node id> or add a 'node_id' key")
        }
        let start: Int64
        if let parsedStart {
            start = parsedStart
        } else {
            guard let startText = startTime?.text else { throw fail("missing 'start_time'") }
            guard let micros = Timestamp.micros(rfc3339: startText) else {
                throw fail("'start_time' is not an RFC 3339 timestamp: '\(startText.prefix(40))'")
            }
            start = micros
        }
        let durationMillis = duration?.integer ?? 0
        guard durationMillis >= 0 else {
            throw RecordError(location: location(), message: "'duration' must not be negative", reason: .negativeDuration)
        }
        let (durationMicros, overflow) = durationMillis.multipliedReportingOverflow(by: 1000)
        guard !overflow else { throw fail("'duration' \(durationMillis) ms is too long") }
        let isTCP = method?.text == nil && self.protocol?.text == nil
        let route = Route(
            cluster: upstreamCluster?.text ?? "", authority: isTCP ? nil : authority?.text, proxy: proxy,
            context: context)
        let inbound = route.reporter == .destination
        let localAddress = inbound ? downstreamLocalAddress?.text : upstreamLocalAddress?.text
        let remoteAddress = inbound ? downstreamRemoteAddress?.text : upstreamHost?.text
        let flags = responseFlags?.text ?? "-"

        if isTCP {
            // A TCP proxy's entry: the connection, its bytes both ways and how long it lasted.
            return batch.connections.append(
                TCPConnection(
                    reporter: route.reporter, proxy: proxy, service: route.service, startMicros: start,
                    durationMicros: durationMicros, receivedBytes: bytesReceived?.integer ?? 0,
                    sentBytes: bytesSent?.integer ?? 0, responseFlags: flags, localAddress: localAddress,
                    remoteAddress: remoteAddress, channel: channel))
        }

        let code = responseCode?.integer ?? 0
        guard (0...999).contains(code) else { throw fail("'response_code' \(code) is not an HTTP status") }
        let grpc = grpcStatus?.integer.map { Int($0) }
        batch.requests.append(
            CallReport(
                reporter: route.reporter,
                proxy: proxy,
                service: route.service,
                requestProtocol: grpc != nil ? .grpc : .http,
                startMicros: start,
                durationMicros: durationMicros,
                responseCode: Int(code),
                grpcStatus: grpc,
                responseFlags: flags,
                requestBytes: bytesReceived?.integer ?? 0,
                responseBytes: bytesSent?.integer ?? 0,
                requestID: requestID?.text,
                traceID: parsedTrace ?? traceID?.text.flatMap { TraceID(hex: $0) },
                localAddress: localAddress,
                remoteAddress: remoteAddress,
                channel: channel
            ))
    }
}
