import Foundation
import SextantLoadgen
import SextantWire
import SwiftProtobuf

/// OTLP trace export requests and Envoy ALS messages of a round, built with the generated types in
/// the shapes of Tests/Fixtures/envoy/otlp/traces and Tests/Fixtures/envoy/als: one per sidecar.
enum ProtobufPayloads {
    typealias Side = BookinfoRound.Side
    typealias Workload = BookinfoRound.Workload

    static let envoyBuild = "9e5580933739775e8bce696a57a2e1bc99368f23/1.40.0/Clean/RELEASE/BoringSSL"

    /// `ExportTraceServiceRequest` bodies as Envoy's OpenTelemetry tracer sends them.
    static func otlp(_ round: BookinfoRound, maxPerBody: Int, path: String) throws -> [BodyTemplate] {
        var out: [BodyTemplate] = []
        for (index, workload) in BookinfoRound.workloads.enumerated() {
            for chunk in JSONPayloadsChunks.chunks(round.sides[index], maxPerBody) {
                var request = Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest()
                var resourceSpans = Opentelemetry_Proto_Trace_V1_ResourceSpans()
                resourceSpans.resource.attributes = [
                    kv("k8s.namespace.name", "default"), kv("service.name", workload.serviceName),
                    kv("service.version", workload.version), kv("k8s.pod.name", workload.pod),
                    kv("service.namespace", "default"), kv("k8s.deployment.name", workload.name),
                    kv("telemetry.sdk.name", "envoy"), kv("telemetry.sdk.version", envoyBuild),
                    kv("service.instance.id", workload.nodeID), kv("telemetry.sdk.language", "cpp"),
                ]
                var scope = Opentelemetry_Proto_Trace_V1_ScopeSpans()
                scope.scope.name = "envoy"
                scope.scope.version = envoyBuild
                scope.spans = chunk.map { span($0, workload) }
                resourceSpans.scopeSpans = [scope]
                request.resourceSpans = [resourceSpans]
                let body: [UInt8] = try request.serializedBytes()
                let patches = try BodyTemplate.findPatches(
                    in: body, textIDs: chunk.map(\.requestID), binaryIDs: binaryIDs(chunk), times: [.fixed64Nanos])
                out.append(BodyTemplate(body: body, patches: patches, records: chunk.count, target: path))
            }
        }
        return out
    }

    private static func binaryIDs(_ sides: ArraySlice<Side>) -> [[UInt8]] {
        var seen: Set<[UInt8]> = []
        for side in sides {
            seen.insert(side.traceID)
            seen.insert(side.spanID)
            if let parent = side.parentID { seen.insert(parent) }
        }
        return Array(seen)
    }

    private static func kv(_ key: String, _ value: String) -> Opentelemetry_Proto_Common_V1_KeyValue {
        var pair = Opentelemetry_Proto_Common_V1_KeyValue()
        pair.key = key
        pair.value.stringValue = value
        return pair
    }

    private static func span(_ side: Side, _ workload: Workload) -> Opentelemetry_Proto_Trace_V1_Span {
        var span = Opentelemetry_Proto_Trace_V1_Span()
        span.traceID = Data(side.traceID)
        span.spanID = Data(side.spanID)
        if let parent = side.parentID { span.parentSpanID = Data(parent) }
        span.name = "\(side.calleeService).default.svc.cluster.local:9080/*"
        span.kind = side.server ? .server : .client
        let base = UInt64(BodyTemplate.templateBaseMicros) * 1000
        span.startTimeUnixNano = base + UInt64(side.startMicros) * 1000
        span.endTimeUnixNano = base + UInt64(side.startMicros + side.durationMicros) * 1000
        var attributes = [
            kv("node_id", workload.nodeID), kv("zone", ""), kv("guid:x-request-id", side.requestID),
            kv("http.url", "http://\(side.authority)\(side.path)"), kv("http.method", "GET"),
            kv("downstream_cluster", "-"), kv("user_agent", side.userAgent), kv("http.protocol", "HTTP/1.1"),
            kv("peer.address", BookinfoRound.podIP), kv("request_size", "0"),
            kv("response_size", "\(side.responseBytes)"), kv("component", "proxy"),
            kv("upstream_cluster", side.upstreamCluster), kv("upstream_cluster.name", side.upstreamCluster),
            kv("http.status_code", "\(side.status)"), kv("response_flags", "-"),
        ]
        if side.status >= 500 {
            attributes.append(kv("error", "true"))
            span.status.code = .error
        }
        attributes += [
            kv("istio.mesh_id", "cluster.local"), kv("istio.canonical_revision", workload.version),
            kv("istio.canonical_service", workload.service), kv("istio.namespace", "default"),
            kv("istio.cluster_id", "Kubernetes"),
        ]
        span.attributes = attributes
        span.flags = side.parentID == nil ? 257 : 769
        return span
    }

    // MARK: - ALS

    /// One ALS stream per sidecar: the first message names the proxy (node id, cluster, Istio
    /// metadata, the fixture's extensions), each message holds up to `maxPerMessage` entries.
    /// The template's `target` is the node id; `records` counts the entries of the message.
    static func als(_ round: BookinfoRound, maxPerMessage: Int) throws -> [[BodyTemplate]] {
        var streams: [[BodyTemplate]] = []
        for (index, workload) in BookinfoRound.workloads.enumerated() {
            var messages: [BodyTemplate] = []
            for (n, chunk) in JSONPayloadsChunks.chunks(round.sides[index], maxPerMessage).enumerated() {
                var message = Envoy_Service_Accesslog_V3_StreamAccessLogsMessage()
                if n == 0 { message.identifier = identifier(workload) }
                message.httpLogs.logEntry = chunk.map(entry)
                let body: [UInt8] = try message.serializedBytes()
                var ids: Set<String> = []
                for side in chunk {
                    ids.insert(side.requestID)
                    ids.insert(BookinfoRound.hex(side.traceID))
                    ids.insert(BookinfoRound.hex(side.spanID))
                    if let parent = side.parentID { ids.insert(BookinfoRound.hex(parent)) }
                }
                let patches = try BodyTemplate.findPatches(
                    in: body, textIDs: Array(ids), binaryIDs: [], times: [.varintSeconds])
                messages.append(BodyTemplate(body: body, patches: patches, records: chunk.count, target: workload.nodeID))
            }
            if !messages.isEmpty { streams.append(messages) }
        }
        return streams
    }

    private static func address(_ text: String) -> Envoy_Config_Core_V3_Address {
        var address = Envoy_Config_Core_V3_Address()
        let parts = text.split(separator: ":")
        address.socketAddress.address = String(parts[0])
        address.socketAddress.portValue = UInt32(parts[1]) ?? 0
        return address
    }

    private static func duration(_ micros: Int64) -> Google_Protobuf_Duration {
        var d = Google_Protobuf_Duration()
        d.seconds = micros / 1_000_000
        d.nanos = Int32(micros % 1_000_000) * 1000
        return d
    }

    private static func entry(_ side: Side) -> Envoy_Data_Accesslog_V3_HTTPAccessLogEntry {
        var entry = Envoy_Data_Accesslog_V3_HTTPAccessLogEntry()
        var common = Envoy_Data_Accesslog_V3_AccessLogCommon()
        let start = BodyTemplate.templateBaseMicros + side.startMicros
        let total = max(side.durationMicros, 200)
        common.downstreamRemoteAddress = address(side.downstreamRemote)
        common.downstreamLocalAddress = address(side.downstreamLocal)
        common.startTime.seconds = start / 1_000_000
        common.startTime.nanos = Int32(start % 1_000_000) * 1000
        common.timeToLastRxByte = duration(60)
        common.timeToFirstUpstreamTxByte = duration(min(250, total / 4))
        common.timeToLastUpstreamTxByte = duration(min(350, total / 3))
        common.timeToFirstUpstreamRxByte = duration(total - 300)
        common.timeToLastUpstreamRxByte = duration(total - 200)
        common.timeToFirstDownstreamTxByte = duration(total - 150)
        common.timeToLastDownstreamTxByte = duration(total - 20)
        common.upstreamRemoteAddress = address(side.upstreamHost)
        common.upstreamLocalAddress = address(side.upstreamLocal)
        common.upstreamCluster = side.upstreamCluster
        common.routeName = "default"
        common.downstreamDirectRemoteAddress = address(side.downstreamRemote)
        common.duration = duration(total)
        common.upstreamRequestAttemptCount = 1
        common.streamID = side.requestID
        common.downstreamWireBytesSent = UInt64(330 + side.responseBytes)
        common.downstreamWireBytesReceived = 390
        common.upstreamWireBytesSent = 390
        common.upstreamWireBytesReceived = UInt64(330 + side.responseBytes)
        common.accessLogType = .downstreamEnd
        entry.commonProperties = common
        entry.protocolVersion = .http11
        entry.request.requestMethod = .get
        entry.request.scheme = "http"
        entry.request.authority = side.authority
        entry.request.path = side.path
        entry.request.userAgent = side.userAgent
        entry.request.requestID = side.requestID
        entry.request.requestHeadersBytes = 380
        var headers = ["x-b3-traceid": BookinfoRound.hex(side.traceID), "x-b3-spanid": BookinfoRound.hex(side.spanID)]
        if let parent = side.parentID { headers["x-b3-parentspanid"] = BookinfoRound.hex(parent) }
        entry.request.requestHeaders = headers
        entry.request.upstreamHeaderBytesSent = 372
        entry.request.downstreamHeaderBytesReceived = 160
        entry.response.responseCode.value = UInt32(side.status)
        entry.response.responseHeadersBytes = 330
        entry.response.responseBodyBytes = UInt64(side.responseBytes)
        entry.response.responseCodeDetails = "via_upstream"
        return entry
    }

    private static func string(_ text: String) -> Google_Protobuf_Value {
        var value = Google_Protobuf_Value()
        value.stringValue = text
        return value
    }

    private static func identifier(_ workload: Workload) -> Envoy_Service_Accesslog_V3_StreamAccessLogsMessage.Identifier {
        var identifier = Envoy_Service_Accesslog_V3_StreamAccessLogsMessage.Identifier()
        if let fixture = fixtureIdentifier { identifier = fixture }
        identifier.node.id = workload.nodeID
        identifier.node.cluster = workload.serviceName
        var labels = Google_Protobuf_Struct()
        labels.fields = [
            "version": string(workload.version), "security.istio.io/tlsMode": string("istio"),
            "service.istio.io/canonical-name": string(workload.service),
            "service.istio.io/canonical-revision": string(workload.version), "app": string(workload.service),
        ]
        var labelsValue = Google_Protobuf_Value()
        labelsValue.structValue = labels
        var metadata = Google_Protobuf_Struct()
        metadata.fields = [
            "SERVICE_ACCOUNT": string("bookinfo-\(workload.service)"), "MESH_ID": string("cluster.local"),
            "WORKLOAD_NAME": string(workload.name), "LABELS": labelsValue, "NAMESPACE": string("default"),
            "OWNER": string("kubernetes://apis/apps/v1/namespaces/default/deployments/\(workload.name)"),
            "INTERCEPTION_MODE": string("NONE"), "CLUSTER_ID": string("Kubernetes"),
            "INSTANCE_IPS": string(BookinfoRound.podIP), "NAME": string(workload.pod),
        ]
        identifier.node.metadata = metadata
        identifier.node.userAgentName = "envoy"
        identifier.logName = "http_envoy_accesslog"
        return identifier
    }

    /// The first ALS message of the captured productpage sidecar's stream names its proxy with
    /// Envoy's 516 extensions; its identifier is the model for every sidecar's, when found.
    nonisolated(unsafe) static var fixtureIdentifier: Envoy_Service_Accesslog_V3_StreamAccessLogsMessage.Identifier?

    static func loadFixtureIdentifier(repositoryRoot: String) {
        let path = repositoryRoot + "/Tests/Fixtures/envoy/als/productpage-v1/msg-001.pb"
        guard let data = FileManager.default.contents(atPath: path),
            let message = try? Envoy_Service_Accesslog_V3_StreamAccessLogsMessage(serializedBytes: [UInt8](data)),
            message.hasIdentifier
        else { return }
        fixtureIdentifier = message.identifier
    }
}
