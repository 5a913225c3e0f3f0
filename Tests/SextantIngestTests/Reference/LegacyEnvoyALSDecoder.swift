import SwiftProtobuf
import SextantModel
import SextantWire
@testable import SextantIngest

/// The SwiftProtobuf-message decoder that `EnvoyALSDecoder` replaces (kept as the
/// reference of the differential tests).
///
/// Turns Envoy gRPC access log service (ALS v3) entries into calls and TCP connections.
///
/// The proxy is named only in a stream's first message (`identifier.node`): the caller keeps
/// the identity per stream and passes it for every message.
/// API: https://www.envoyproxy.io/docs/envoy/latest/api-v3/service/accesslog/v3/als.proto
struct LegacyEnvoyALSDecoder: Sendable {
    init() {}

    func decode(_ message: Envoy_Service_Accesslog_V3_StreamAccessLogsMessage, proxy: WorkloadIdentity)
        -> IngestBatch
    {
        var batch = IngestBatch()
        switch message.logEntries {
        case .httpLogs(let logs)?:
            for (index, entry) in logs.logEntry.enumerated() {
                do throws(RecordError) {
                    if let request = try request(entry, proxy: proxy, location: "http_logs[\(index)]") {
                        batch.requests.append(request)
                    }
                } catch {
                    batch.rejected.append(error)
                }
            }
        case .tcpLogs(let logs)?:
            for entry in logs.logEntry {
                if let connection = connection(entry, proxy: proxy) { batch.connections.append(connection) }
            }
        case nil:
            break
        }
        return batch
    }

    private func request(
        _ entry: Envoy_Data_Accesslog_V3_HTTPAccessLogEntry, proxy: WorkloadIdentity, location: String
    ) throws(RecordError) -> CallReport? {
        let common = entry.commonProperties
        // Periodic and start-of-stream entries describe calls that are still running.
        guard !common.intermediateLogEntry, common.accessLogType == .notSet || common.accessLogType == .downstreamEnd
        else { return nil }
        guard common.hasStartTime else { throw RecordError(location: location, message: "missing start_time") }
        guard let start = common.startTime.micros else {
            throw RecordError(location: location, message: "start_time is outside years 1 to 9999")
        }
        guard let duration = common.hasDuration ? common.duration.micros : 0, duration >= 0 else {
            throw RecordError(location: location, message: "duration is negative or longer than 10,000 years")
        }
        let route = Route(
            cluster: common.upstreamCluster, authority: entry.request.authority.isEmpty ? nil : entry.request.authority,
            proxy: proxy)
        let tls = TLSView(common)
        let headers = entry.request.requestHeaders
        let traceID = headers["x-b3-traceid"].flatMap { TraceID(hex: $0) }
            ?? headers["traceparent"].flatMap(Self.traceparentTraceID)
        let requestID = entry.request.requestID.isEmpty ? (common.streamID.isEmpty ? nil : common.streamID)
            : entry.request.requestID
        let grpcStatus = entry.response.responseTrailers["grpc-status"].flatMap { Int($0) }
            ?? entry.response.responseHeaders["grpc-status"].flatMap { Int($0) }
        return CallReport(
            reporter: route.reporter,
            proxy: tls.ownPrincipal.map { var p = proxy; p.principal = $0; return p } ?? proxy,
            peer: nil,
            service: route.service,
            requestProtocol: grpcStatus != nil ? .grpc : .http,
            startMicros: start,
            durationMicros: duration,
            responseCode: entry.response.hasResponseCode ? Int(entry.response.responseCode.value) : 0,
            grpcStatus: grpcStatus,
            responseFlags: common.hasResponseFlags ? common.responseFlags.shortCodes : "-",
            requestBytes: Int64(clamping: entry.request.requestBodyBytes),
            responseBytes: Int64(clamping: entry.response.responseBodyBytes),
            securityPolicy: route.reporter == .source ? "unknown" : tls.policy,
            requestID: requestID,
            traceID: traceID,
            localAddress: route.reporter == .destination
                ? common.downstreamLocalAddress.text : common.upstreamLocalAddress.text,
            remoteAddress: route.reporter == .destination
                ? common.downstreamRemoteAddress.text : common.upstreamRemoteAddress.text,
            channel: .als
        )
    }

    private func connection(_ entry: Envoy_Data_Accesslog_V3_TCPAccessLogEntry, proxy: WorkloadIdentity)
        -> TCPConnection?
    {
        let common = entry.commonProperties
        guard !common.intermediateLogEntry,
            common.accessLogType == .notSet || common.accessLogType == .tcpConnectionEnd,
            common.hasStartTime, let start = common.startTime.micros,
            let duration = common.hasDuration ? common.duration.micros : 0, duration >= 0
        else { return nil }
        let route = Route(cluster: common.upstreamCluster, authority: nil, proxy: proxy)
        let tls = TLSView(common)
        return TCPConnection(
            reporter: route.reporter,
            proxy: proxy,
            service: route.service,
            startMicros: start,
            durationMicros: duration,
            receivedBytes: Int64(clamping: entry.connectionProperties.receivedBytes),
            sentBytes: Int64(clamping: entry.connectionProperties.sentBytes),
            responseFlags: common.hasResponseFlags ? common.responseFlags.shortCodes : "-",
            securityPolicy: route.reporter == .source ? "unknown" : tls.policy,
            localAddress: route.reporter == .destination
                ? common.downstreamLocalAddress.text : common.upstreamLocalAddress.text,
            remoteAddress: route.reporter == .destination
                ? common.downstreamRemoteAddress.text : common.upstreamRemoteAddress.text,
            channel: .als
        )
    }

    /// `00-<trace id>-<span id>-<flags>` → the trace id.
    static func traceparentTraceID(_ header: String) -> TraceID? {
        let parts = header.split(separator: "-")
        guard parts.count >= 4, parts[1].count == 32 else { return nil }
        return TraceID(hex: parts[1])
    }
}

/// The SPIFFE identities in an entry's downstream TLS properties.
struct TLSView {
    var ownPrincipal: String?
    var peerPrincipal: String?

    init(_ common: Envoy_Data_Accesslog_V3_AccessLogCommon) {
        func uri(_ cert: Envoy_Data_Accesslog_V3_TLSProperties.CertificateProperties) -> String? {
            for san in cert.subjectAltName {
                if case .uri(let u)? = san.san, !u.isEmpty { return u }
            }
            return nil
        }
        ownPrincipal = common.hasTlsProperties ? uri(common.tlsProperties.localCertificateProperties) : nil
        peerPrincipal = common.hasTlsProperties ? uri(common.tlsProperties.peerCertificateProperties) : nil
    }

    /// Istio's server-side `connection_security_policy`.
    var policy: String { ownPrincipal != nil && peerPrincipal != nil ? "mutual_tls" : "none" }
}

extension Envoy_Data_Accesslog_V3_ResponseFlags {
    /// Envoy's short flag codes joined by `,`, or `-` (reference: istio-telemetry §2.3).
    var shortCodes: String {
        var codes: [String] = []
        if failedLocalHealthcheck { codes.append("LH") }
        if noHealthyUpstream { codes.append("UH") }
        if upstreamRequestTimeout { codes.append("UT") }
        if localReset { codes.append("LR") }
        if upstreamRemoteReset { codes.append("UR") }
        if upstreamConnectionFailure { codes.append("UF") }
        if upstreamConnectionTermination { codes.append("UC") }
        if upstreamOverflow { codes.append("UO") }
        if noRouteFound { codes.append("NR") }
        if delayInjected { codes.append("DI") }
        if faultInjected { codes.append("FI") }
        if rateLimited { codes.append("RL") }
        if hasUnauthorizedDetails { codes.append("UAEX") }
        if rateLimitServiceError { codes.append("RLSE") }
        if downstreamConnectionTermination { codes.append("DC") }
        if upstreamRetryLimitExceeded { codes.append("URX") }
        if streamIdleTimeout { codes.append("SI") }
        if invalidEnvoyRequestHeaders { codes.append("IH") }
        if downstreamProtocolError { codes.append("DPE") }
        if upstreamMaxStreamDurationReached { codes.append("UMSDR") }
        if responseFromCacheFilter { codes.append("RFCF") }
        if noFilterConfigFound { codes.append("NFCF") }
        if durationTimeout { codes.append("DT") }
        if upstreamProtocolError { codes.append("UPE") }
        if noClusterFound { codes.append("NC") }
        if overloadManager { codes.append("OM") }
        if dnsResolutionFailure { codes.append("DF") }
        if downstreamRemoteReset { codes.append("DR") }
        return codes.isEmpty ? "-" : codes.joined(separator: ",")
    }
}

extension Google_Protobuf_Timestamp {
    /// Microseconds since the epoch; nil outside the range protobuf allows (years 1 to 9999),
    /// beyond which the product no longer fits an `Int64`.
    var micros: Int64? {
        guard (-62_135_596_800...253_402_300_799).contains(seconds) else { return nil }
        return seconds * 1_000_000 + Int64(nanos / 1000)
    }
}

extension Google_Protobuf_Duration {
    /// Microseconds; nil outside the range protobuf allows (about ±10,000 years).
    var micros: Int64? {
        guard (-315_576_000_000...315_576_000_000).contains(seconds) else { return nil }
        return seconds * 1_000_000 + Int64(nanos / 1000)
    }
}
