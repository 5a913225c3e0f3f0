package import SextantModel
#if canImport(Glibc)
internal import Glibc
#elseif canImport(Darwin)
internal import Darwin
#endif

/// Decodes Envoy JSON access-log lines in Istio's JSON format (newline-delimited objects).
///
/// A file line carries no proxy identity, so the uploader names the proxy (`defaultProxy`, from
/// `?node=` or `--node`); a line may instead name it with a `node_id` key, or with the Kubernetes
/// keys a log shipper adds (`kubernetes.pod_name`/`namespace_name`/`labels`, or `k8s.pod.name`,
/// `k8s.namespace.name`, `k8s.deployment.name`). An HTTP line becomes a call, a TCP proxy line
/// (no method, no protocol) a TCP connection. Bad lines are reported and the rest kept.
/// Format: https://istio.io/latest/docs/tasks/observability/logs/access-log/
package struct EnvoyAccessLogDecoder: Sendable {
    package var defaultProxy: WorkloadIdentity?

    package init(defaultProxy: WorkloadIdentity? = nil) {
        self.defaultProxy = defaultProxy
    }

    /// Decodes every line of `body`; `firstLine` numbers the lines for error messages.
    package func decode(lines body: [UInt8], firstLine: Int = 1) -> IngestBatch {
        body.withUnsafeBytes { decode(lines: $0, firstLine: firstLine) }
    }

    /// Decodes every line of a body the caller holds in memory.
    package func decode(lines bytes: UnsafeRawBufferPointer, firstLine: Int = 1) -> IngestBatch {
        var batch = IngestBatch()
        let context = DecodeContext()
        var lineNumber = firstLine
        var start = 0
        guard let base = bytes.baseAddress else { return batch }
        while start < bytes.count {
            let end = memchr(base + start, 0x0A, bytes.count - start).map { base.distance(to: UnsafeRawPointer($0)) }
                ?? bytes.count
            var trimmedEnd = end
            while trimmedEnd > start, bytes[trimmedEnd - 1] == 0x0D || bytes[trimmedEnd - 1] == 0x20 {
                trimmedEnd -= 1
            }
            if trimmedEnd > start {
                let line = UnsafeRawBufferPointer(rebasing: bytes[start..<trimmedEnd])
                decodeLine(line, number: lineNumber, context: context, into: &batch)
            }
            lineNumber += 1
            start = end + 1
        }
        return batch
    }

    private func decodeLine(
        _ bytes: UnsafeRawBufferPointer, number: Int, context: DecodeContext, into batch: inout IngestBatch
    ) {
        // Made only for a line that is rejected.
        var location: String { "line \(number)" }
        var line = AccessLogLine()
        var reader = JSONReader(bytes)
        do throws(JSONReader.SyntaxError) {
            try line.read(&reader, context: context)
            try reader.finish()
        } catch {
            batch.rejected.append(RecordError(location: location, message: "invalid JSON: \(error)"))
            return
        }
        if let problem = line.problem {
            batch.rejected.append(RecordError(location: location, message: problem))
            return
        }
        do throws(RecordError) {
            try line.record(defaultProxy: defaultProxy, location: location, context: context, into: &batch)
        } catch {
            batch.rejected.append(error)
        }
    }
}

extension AccessLogLine {
    /// Reads one line's object: the keys the model uses, each as the scalar it holds.
    fileprivate mutating func read(_ r: inout JSONReader, context: DecodeContext) throws(JSONReader.SyntaxError) {
        guard try r.peekKind() == .object else {
            problem = "a line must be a JSON object"
            try r.skipValue()
            return
        }
        var more = try r.openObject()
        while more {
            let key = try r.key()
            if let field = Field(r.slice(key)), !key.escaped {
                // The two values every line has that need no string: read straight from their bytes.
                if field == .startTime || field == .traceID, try r.peekKind() == .string {
                    let raw = try r.rawString()
                    let bytes = r.slice(raw)
                    if !raw.escaped, field == .startTime, let micros = Timestamp.micros(rfc3339: bytes) {
                        startTime = nil
                        parsedStart = micros
                    } else if !raw.escaped, field == .traceID, let id = TraceID(hexBytes: bytes) {
                        traceID = nil
                        parsedTrace = id
                    } else if let text = r.text(raw) {
                        self[field] = .string(text)
                    } else {
                        note("invalid JSON: a string is not valid UTF-8")
                    }
                } else if field == .requestID, try r.peekKind() == .string {
                    // Unique to the line: made as it is, not offered to the intern table.
                    let raw = try r.rawString()
                    if let text = r.text(raw) { requestID = .string(text) } else { note("invalid JSON: a string is not valid UTF-8") }
                } else {
                    self[field] = try scalar(&r, context: context)
                }
            } else if r.equals(key, "node_id") {
                if let value = try scalar(&r, context: context) {
                    if case .string(let s) = value { nodeID = s } else if value != .null { note("'node_id' should be a string") }
                }
            } else if r.equals(key, "kubernetes") {
                try readKubernetes(&r, context: context)
            } else if r.equals(key, "k8s.pod.name") {
                podName = try string(&r, "k8s.pod.name", context: context)
            } else if r.equals(key, "k8s.namespace.name") {
                namespaceName = try string(&r, "k8s.namespace.name", context: context)
            } else if r.equals(key, "k8s.deployment.name") {
                deploymentName = try string(&r, "k8s.deployment.name", context: context)
            } else {
                try r.skipValue()
            }
            more = try r.nextMember()
        }
    }

    private mutating func note(_ message: String) {
        if problem == nil { problem = message }
    }

    /// The next value as a scalar; an object or array is `.nested`.
    private mutating func scalar(_ r: inout JSONReader, context: DecodeContext) throws(JSONReader.SyntaxError)
        -> JSONScalar?
    {
        switch try r.peekKind() {
        case .string:
            let raw = try r.rawString()
            if !raw.escaped, raw.ascii { return .string(context.strings.string(r.slice(raw))) }
            guard let text = r.text(raw) else {
                note("invalid JSON: a string is not valid UTF-8")
                return nil
            }
            return .string(text)
        case .number:
            return .number(r.double(try r.rawNumber()))
        case .bool:
            return .bool(try r.bool())
        case .null:
            try r.null()
            return .null
        case .object, .array:
            try r.skipValue()
            return .nested
        }
    }

    private mutating func string(_ r: inout JSONReader, _ key: String, context: DecodeContext)
        throws(JSONReader.SyntaxError) -> String?
    {
        switch try scalar(&r, context: context) {
        case .string(let s)?: return s
        case .null?, nil: return nil
        default:
            note("'\(key)' should be a string")
            return nil
        }
    }

    private mutating func readKubernetes(_ r: inout JSONReader, context: DecodeContext) throws(JSONReader.SyntaxError) {
        switch try r.peekKind() {
        case .object: break
        case .null: return try r.null()
        default:
            note("'kubernetes' should be an object")
            return try r.skipValue()
        }
        var kubernetes = Kubernetes()
        var more = try r.openObject()
        while more {
            let key = try r.key()
            if r.equals(key, "pod_name") {
                kubernetes.podName = try string(&r, "kubernetes.pod_name", context: context)
            } else if r.equals(key, "namespace_name") {
                kubernetes.namespaceName = try string(&r, "kubernetes.namespace_name", context: context)
            } else if r.equals(key, "labels") {
                if try r.peekKind() == .object {
                    var labels: [String: String] = [:]
                    var members = try r.openObject()
                    while members {
                        let name = try r.key()
                        let value = try string(&r, "kubernetes.labels", context: context)
                        if let value, let label = r.text(name) { labels[label] = value }
                        members = try r.nextMember()
                    }
                    kubernetes.labels = labels
                } else if try r.peekKind() == .null {
                    try r.null()
                } else {
                    note("'kubernetes.labels' should be an object")
                    try r.skipValue()
                }
            } else {
                try r.skipValue()
            }
            more = try r.nextMember()
        }
        self.kubernetes = kubernetes
    }
}

extension AccessLogLine.Field {
    /// The field a key names, from its bytes.
    fileprivate init?(_ key: UnsafeRawBufferPointer) {
        func equals(_ literal: StaticString) -> Bool {
            key.count == literal.utf8CodeUnitCount && JSONReader.same(key.baseAddress!, literal.utf8Start, key.count)
        }
        switch key.count {
        case 6 where equals("method"): self = .method
        case 8 where equals("protocol"): self = .protocol
        case 8 where equals("duration"): self = .duration
        case 8 where equals("trace_id"): self = .traceID
        case 9 where equals("authority"): self = .authority
        case 10 where equals("start_time"): self = .startTime
        case 10 where equals("bytes_sent"): self = .bytesSent
        case 10 where equals("request_id"): self = .requestID
        case 11 where equals("grpc_status"): self = .grpcStatus
        case 13 where equals("response_code"): self = .responseCode
        case 13 where equals("upstream_host"): self = .upstreamHost
        case 14 where equals("response_flags"): self = .responseFlags
        case 14 where equals("bytes_received"): self = .bytesReceived
        case 16 where equals("upstream_cluster"): self = .upstreamCluster
        case 22 where equals("upstream_local_address"): self = .upstreamLocalAddress
        case 24 where equals("downstream_local_address"): self = .downstreamLocalAddress
        case 25 where equals("downstream_remote_address"): self = .downstreamRemoteAddress
        default: return nil
        }
    }
}
