internal import SwiftProtobuf
package import SextantModel
package import SextantWire

/// Turns Envoy gRPC access log service (ALS v3) entries into calls and TCP connections, reading
/// the entries of a `StreamAccessLogsMessage` straight from its protobuf bytes (`ProtobufReader`).
///
/// The proxy is named only in a stream's first message (`identifier.node`): the caller reads it
/// with `identifier(protobuf:)` (a SwiftProtobuf message, once per stream), keeps the identity
/// and passes it for every message.
/// API: https://www.envoyproxy.io/docs/envoy/latest/api-v3/service/accesslog/v3/als.proto
package struct EnvoyALSDecoder: Sendable {
    package init() {}

    static let messageName = "envoy.service.accesslog.v3.StreamAccessLogsMessage"

    /// The message's `identifier`, nil when it has none.
    package func identifier(protobuf body: [UInt8]) throws(DecodeError)
        -> Envoy_Service_Accesslog_V3_StreamAccessLogsMessage.Identifier?
    {
        guard let identifier = try identifierBytes(protobuf: body) else { return nil }
        return try Self.parseIdentifier(identifier)
    }

    /// The proxy a stream's `identifier` names, nil when the message has none. Every stream of a
    /// proxy sends the same identifier bytes, so each distinct one is parsed once per process.
    package func streamProxy(protobuf body: [UInt8]) throws(DecodeError) -> StreamProxy? {
        guard let identifier = try identifierBytes(protobuf: body) else { return nil }
        return try Self.knownProxies.value(IdentifierBytes(bytes: identifier)) { key in
            Result { () throws(DecodeError) in
                let node = try Self.parseIdentifier(key.bytes).node
                return StreamProxy(nodeID: node.id, identity: node.workloadIdentity)
            }
        }.get()
    }

    /// Who sends a stream: the node id, and the identity its metadata gives (nil: none).
    package struct StreamProxy: Sendable, Equatable {
        package var nodeID: String
        package var identity: WorkloadIdentity?
    }

    private static let knownProxies = SharedMemo<IdentifierBytes, Result<StreamProxy, DecodeError>>(limit: 4096)

    /// An identifier's bytes as a memo key. An identifier holds the node's metadata, kilobytes
    /// long: the hasher gets one word (`ByteHash` of the bytes), not every byte through SipHash.
    private struct IdentifierBytes: Hashable, Sendable {
        var bytes: [UInt8]

        func hash(into hasher: inout Hasher) {
            hasher.combine(bytes.withUnsafeBytes { ByteHash.hash($0) })
        }

        static func == (a: Self, b: Self) -> Bool {
            a.bytes.withUnsafeBytes { x in b.bytes.withUnsafeBytes { y in ByteHash.equal(x, y) } }
        }
    }

    /// The bytes of the message's `identifier` field (occurrences of a message field merge, which
    /// is what parsing their concatenation does), nil when it has none.
    private func identifierBytes(protobuf body: [UInt8]) throws(DecodeError) -> [UInt8]? {
        var identifier: [UInt8]?
        var failure: ProtobufReader.WireError?
        body.withUnsafeBytes { bytes in
            var r = ProtobufReader(bytes)
            do throws(ProtobufReader.WireError) {
                while let field = try r.next() {
                    guard field.number == 1, field.wireType == .lengthDelimited else {
                        try r.skip(field)
                        continue
                    }
                    let occurrence = try r.bytes()
                    identifier = (identifier ?? []) + Array(occurrence)
                }
            } catch {
                failure = error
            }
        }
        if let failure { throw DecodeError(.malformed, "body is not a protobuf \(Self.messageName): \(failure)") }
        return identifier
    }

    private static func parseIdentifier(_ identifier: [UInt8]) throws(DecodeError)
        -> Envoy_Service_Accesslog_V3_StreamAccessLogsMessage.Identifier
    {
        var options = BinaryDecodingOptions()
        // The identifier sits one level inside the message.
        options.messageDepthLimit = ProtobufReader.maxDepth - 1
        do {
            return try Envoy_Service_Accesslog_V3_StreamAccessLogsMessage.Identifier(
                serializedBytes: identifier, options: options)
        } catch {
            throw DecodeError(.malformed, "body is not a protobuf \(Self.messageName): identifier: \(error)")
        }
    }

    /// The calls (`http_logs`) or connections (`tcp_logs`) of one message.
    /// - Throws: `DecodeError.malformed` when the bytes are not a protobuf message.
    package func decode(protobuf body: [UInt8], proxy: WorkloadIdentity) throws(DecodeError) -> IngestBatch {
        var result: Result<IngestBatch, ProtobufReader.WireError> = .success(IngestBatch())
        body.withUnsafeBytes { bytes in
            do throws(ProtobufReader.WireError) {
                result = .success(try decode(bytes, proxy: proxy))
            } catch {
                result = .failure(error)
            }
        }
        switch result {
        case .success(let batch): return batch
        case .failure(let error):
            throw DecodeError(.malformed, "body is not a protobuf \(Self.messageName): \(error)")
        }
    }

    private func decode(_ body: UnsafeRawBufferPointer, proxy: WorkloadIdentity) throws(ProtobufReader.WireError)
        -> IngestBatch
    {
        // `log_entries` is a oneof: the last member present wins, and occurrences of the same member
        // in a row merge. Find where the last run starts, then read the entries from there.
        var r = ProtobufReader(body)
        var member = 0
        var run = r
        while true {
            let before = r
            guard let field = try r.next() else { break }
            if (field.number == 2 || field.number == 3), field.wireType == .lengthDelimited, field.number != member {
                member = field.number
                run = before
            }
            try r.skip(field)
        }
        var batch = IngestBatch()
        guard member != 0 else { return batch }
        let context = DecodeContext()
        var index = 0
        while let field = try run.next() {
            guard field.number == member, field.wireType == .lengthDelimited else {
                try run.skip(field)
                continue
            }
            var entries = try run.message()
            while let inner = try entries.next() {
                guard inner.number == 1, inner.wireType == .lengthDelimited else {
                    try entries.skip(inner)
                    continue
                }
                var reader = try entries.message()
                if member == 2 {
                    var entry = HTTPEntry()
                    try entry.read(&reader, context: context)
                    do throws(RecordError) {
                        if let request = try entry.request(proxy: proxy, index: index, context: context) {
                            batch.requests.append(request)
                        }
                    } catch {
                        batch.rejected.append(error)
                    }
                } else {
                    var entry = TCPEntry()
                    try entry.read(&reader, context: context)
                    if let connection = entry.connection(proxy: proxy, context: context) {
                        batch.connections.append(connection)
                    }
                }
                index += 1
            }
        }
        return batch
    }

    /// `00-<trace id>-<span id>-<flags>` → the trace id.
    static func traceparentTraceID(_ header: String) -> TraceID? {
        let parts = header.split(separator: "-")
        guard parts.count >= 4, parts[1].count == 32 else { return nil }
        return TraceID(hex: parts[1])
    }
}

private typealias Bytes = UnsafeRawBufferPointer

private var noBytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: nil, count: 0) }

// MARK: - Entries

/// An `HTTPAccessLogEntry` as read from the wire.
private struct HTTPEntry {
    var common = CommonFields()
    var authority = noBytes
    var requestID = noBytes
    var requestBodyBytes: UInt64 = 0
    var b3TraceID: Bytes?
    var traceparent: Bytes?
    var hasResponseCode = false
    var responseCode: UInt32 = 0
    var responseBodyBytes: UInt64 = 0
    var headerGRPCStatus: Bytes?
    var trailerGRPCStatus: Bytes?

    mutating func read(_ r: inout ProtobufReader, context: DecodeContext) throws(ProtobufReader.WireError) {
        while let field = try r.next() {
            switch (field.number, field.wireType) {
            case (1, .lengthDelimited):
                var m = try r.message()
                try common.merge(&m)
            case (3, .lengthDelimited):
                var m = try r.message()
                try readRequest(&m)
            case (4, .lengthDelimited):
                var m = try r.message()
                try readResponse(&m)
            default: try r.skip(field)
            }
        }
    }

    private mutating func readRequest(_ r: inout ProtobufReader) throws(ProtobufReader.WireError) {
        while let field = try r.next() {
            switch (field.number, field.wireType) {
            case (3, .lengthDelimited): authority = try r.string()
            case (9, .lengthDelimited): requestID = try r.string()
            case (12, .varint): requestBodyBytes = try r.varint()
            case (13, .lengthDelimited):
                var m = try r.message()
                let (key, value) = try mapEntry(&m)
                if equals(key, "x-b3-traceid") {
                    b3TraceID = value
                } else if equals(key, "traceparent") {
                    traceparent = value
                }
            default: try r.skip(field)
            }
        }
    }

    private mutating func readResponse(_ r: inout ProtobufReader) throws(ProtobufReader.WireError) {
        while let field = try r.next() {
            switch (field.number, field.wireType) {
            case (1, .lengthDelimited):
                var m = try r.message()
                hasResponseCode = true
                while let inner = try m.next() {
                    if inner.number == 1, inner.wireType == .varint {
                        responseCode = UInt32(truncatingIfNeeded: try m.varint())
                    } else {
                        try m.skip(inner)
                    }
                }
            case (3, .varint): responseBodyBytes = try r.varint()
            case (4, .lengthDelimited):
                var m = try r.message()
                let (key, value) = try mapEntry(&m)
                if equals(key, "grpc-status") { headerGRPCStatus = value }
            case (5, .lengthDelimited):
                var m = try r.message()
                let (key, value) = try mapEntry(&m)
                if equals(key, "grpc-status") { trailerGRPCStatus = value }
            default: try r.skip(field)
            }
        }
    }

    /// The call this entry records; nil for an entry of a call still running.
    func request(proxy: WorkloadIdentity, index: Int, context: DecodeContext) throws(RecordError) -> CallReport? {
        // Periodic and start-of-stream entries describe calls that are still running.
        guard !common.intermediate, common.accessLogType == 0 || common.accessLogType == 6 else { return nil }
        guard common.hasStart else { throw RecordError(location: "http_logs[\(index)]", message: "missing start_time") }
        guard let start = common.startMicros else {
            throw RecordError(location: "http_logs[\(index)]", message: "start_time is outside years 1 to 9999")
        }
        guard let duration = common.durationMicros, duration >= 0 else {
            throw RecordError(
                location: "http_logs[\(index)]", message: "duration is negative or longer than 10,000 years")
        }
        let route = Route(
            cluster: context.strings.string(common.upstreamCluster),
            authority: authority.isEmpty ? nil : context.strings.string(authority), proxy: proxy, context: context)
        let traceID =
            b3TraceID.flatMap { TraceID(hexBytes: $0) }
            ?? traceparent.flatMap { EnvoyALSDecoder.traceparentTraceID(String(decoding: $0, as: UTF8.self)) }
        let requestID: String? =
            !requestID.isEmpty
            ? String(decoding: requestID, as: UTF8.self)
            : common.streamID.isEmpty ? nil : String(decoding: common.streamID, as: UTF8.self)
        let grpcStatus = trailerGRPCStatus.flatMap(integer) ?? headerGRPCStatus.flatMap(integer)
        let own = common.localURI.map { context.strings.string($0) }
        return CallReport(
            reporter: route.reporter,
            proxy: own.map { var p = proxy; p.principal = $0; return p } ?? proxy,
            peer: nil,
            service: route.service,
            requestProtocol: grpcStatus != nil ? .grpc : .http,
            startMicros: start,
            durationMicros: duration,
            responseCode: hasResponseCode ? Int(responseCode) : 0,
            grpcStatus: grpcStatus,
            responseFlags: common.responseFlags,
            requestBytes: Int64(clamping: requestBodyBytes),
            responseBytes: Int64(clamping: responseBodyBytes),
            securityPolicy: route.reporter == .source ? "unknown" : common.policy,
            requestID: requestID,
            traceID: traceID,
            localAddress: route.reporter == .destination
                ? common.downstreamLocal.text(context) : common.upstreamLocal.text(context),
            remoteAddress: route.reporter == .destination
                ? common.downstreamRemote.text(context) : common.upstreamRemote.text(context),
            channel: .als
        )
    }
}

/// A `TCPAccessLogEntry` as read from the wire.
private struct TCPEntry {
    var common = CommonFields()
    var receivedBytes: UInt64 = 0
    var sentBytes: UInt64 = 0

    mutating func read(_ r: inout ProtobufReader, context: DecodeContext) throws(ProtobufReader.WireError) {
        while let field = try r.next() {
            switch (field.number, field.wireType) {
            case (1, .lengthDelimited):
                var m = try r.message()
                try common.merge(&m)
            case (2, .lengthDelimited):
                var m = try r.message()
                while let inner = try m.next() {
                    switch (inner.number, inner.wireType) {
                    case (1, .varint): receivedBytes = try m.varint()
                    case (2, .varint): sentBytes = try m.varint()
                    default: try m.skip(inner)
                    }
                }
            default: try r.skip(field)
            }
        }
    }

    /// The TCP connection this entry records; nil for an entry of one still open.
    func connection(proxy: WorkloadIdentity, context: DecodeContext) -> TCPConnection? {
        guard !common.intermediate, common.accessLogType == 0 || common.accessLogType == 3,
            common.hasStart, let start = common.startMicros,
            let duration = common.durationMicros, duration >= 0
        else { return nil }
        let route = Route(
            cluster: context.strings.string(common.upstreamCluster), authority: nil, proxy: proxy, context: context)
        return TCPConnection(
            reporter: route.reporter,
            proxy: proxy,
            service: route.service,
            startMicros: start,
            durationMicros: duration,
            receivedBytes: Int64(clamping: receivedBytes),
            sentBytes: Int64(clamping: sentBytes),
            responseFlags: common.responseFlags,
            securityPolicy: route.reporter == .source ? "unknown" : common.policy,
            localAddress: route.reporter == .destination
                ? common.downstreamLocal.text(context) : common.upstreamLocal.text(context),
            remoteAddress: route.reporter == .destination
                ? common.downstreamRemote.text(context) : common.upstreamRemote.text(context),
            channel: .als
        )
    }
}

// MARK: - AccessLogCommon

/// The `AccessLogCommon` fields the model uses.
private struct CommonFields {
    var downstreamRemote = AddressFields()
    var downstreamLocal = AddressFields()
    var upstreamRemote = AddressFields()
    var upstreamLocal = AddressFields()
    /// The first URI SAN of the local and the peer certificate.
    var localURI: Bytes?
    var peerURI: Bytes?
    var hasStart = false
    var start = (seconds: Int64(0), nanos: Int32(0))
    var hasDuration = false
    var duration = (seconds: Int64(0), nanos: Int32(0))
    var upstreamCluster = noBytes
    var hasFlags = false
    /// Bit n is `ResponseFlags` field n.
    var flags: UInt32 = 0
    var streamID = noBytes
    var intermediate = false
    var accessLogType: Int32 = 0

    mutating func merge(_ r: inout ProtobufReader) throws(ProtobufReader.WireError) {
        while let field = try r.next() {
            switch (field.number, field.wireType) {
            case (2, .lengthDelimited): try downstreamRemote.merge(&r)
            case (3, .lengthDelimited): try downstreamLocal.merge(&r)
            case (13, .lengthDelimited): try upstreamRemote.merge(&r)
            case (14, .lengthDelimited): try upstreamLocal.merge(&r)
            case (4, .lengthDelimited):
                var m = try r.message()
                while let inner = try m.next() {
                    switch (inner.number, inner.wireType) {
                    case (4, .lengthDelimited):
                        var cert = try m.message()
                        try Self.firstURI(&cert, into: &localURI)
                    case (5, .lengthDelimited):
                        var cert = try m.message()
                        try Self.firstURI(&cert, into: &peerURI)
                    default: try m.skip(inner)
                    }
                }
            case (5, .lengthDelimited):
                hasStart = true
                try Self.secondsAndNanos(&r, into: &start)
            case (23, .lengthDelimited):
                hasDuration = true
                try Self.secondsAndNanos(&r, into: &duration)
            case (15, .lengthDelimited): upstreamCluster = try r.string()
            case (16, .lengthDelimited):
                hasFlags = true
                var m = try r.message()
                while let inner = try m.next() {
                    switch (inner.number, inner.wireType) {
                    case (13, .lengthDelimited):
                        _ = try m.bytes()
                        flags |= 1 << 13
                    case (1...28, .varint) where inner.number != 13:
                        if try m.bool() { flags |= 1 << inner.number } else { flags &= ~(1 << inner.number) }
                    default: try m.skip(inner)
                    }
                }
            case (26, .lengthDelimited): streamID = try r.string()
            case (27, .varint): intermediate = try r.bool()
            case (33, .varint): accessLogType = try r.int32()
            default: try r.skip(field)
            }
        }
    }

    /// Reads a `Timestamp` or `Duration` (seconds 1, nanos 2) over what was read before.
    private static func secondsAndNanos(_ r: inout ProtobufReader, into value: inout (seconds: Int64, nanos: Int32))
        throws(ProtobufReader.WireError)
    {
        var m = try r.message()
        while let field = try m.next() {
            switch (field.number, field.wireType) {
            case (1, .varint): value.seconds = Int64(bitPattern: try m.varint())
            case (2, .varint): value.nanos = try m.int32()
            default: try m.skip(field)
            }
        }
    }

    /// Keeps the first non-empty URI SAN of a `CertificateProperties`, unless one was kept already.
    private static func firstURI(_ r: inout ProtobufReader, into uri: inout Bytes?) throws(ProtobufReader.WireError) {
        while let field = try r.next() {
            guard field.number == 1, field.wireType == .lengthDelimited else {
                try r.skip(field)
                continue
            }
            var san = try r.message()
            // `san` is a oneof: the last of uri (1) and dns (2) wins.
            var last: Bytes?
            while let inner = try san.next() {
                switch (inner.number, inner.wireType) {
                case (1, .lengthDelimited): last = try san.string()
                case (2, .lengthDelimited):
                    _ = try san.string()
                    last = nil
                default: try san.skip(inner)
                }
            }
            if uri == nil, let last, !last.isEmpty { uri = last }
        }
    }

    /// Microseconds since the epoch; nil outside the range protobuf allows (years 1 to 9999).
    var startMicros: Int64? {
        guard (-62_135_596_800...253_402_300_799).contains(start.seconds) else { return nil }
        return start.seconds * 1_000_000 + Int64(start.nanos / 1000)
    }

    /// Microseconds (0 when absent); nil outside the range protobuf allows (about ±10,000 years).
    var durationMicros: Int64? {
        guard hasDuration else { return 0 }
        guard (-315_576_000_000...315_576_000_000).contains(duration.seconds) else { return nil }
        return duration.seconds * 1_000_000 + Int64(duration.nanos / 1000)
    }

    /// Istio's server-side `connection_security_policy`.
    var policy: String { localURI != nil && peerURI != nil ? "mutual_tls" : "none" }

    /// Envoy's short flag codes joined by `,`, or `-` (reference: istio-telemetry §2.3).
    var responseFlags: String {
        guard hasFlags, flags != 0 else { return "-" }
        var codes: [String] = []
        for number in 1...28 where flags & (1 << number) != 0 { codes.append(Self.flagCodes[number]) }
        return codes.joined(separator: ",")
    }

    /// `ResponseFlags` field number → short code.
    private static let flagCodes = [
        "", "LH", "UH", "UT", "LR", "UR", "UF", "UC", "UO", "NR", "DI", "FI", "RL", "UAEX", "RLSE", "DC", "URX", "SI",
        "IH", "DPE", "UMSDR", "RFCF", "NFCF", "DT", "UPE", "NC", "OM", "DF", "DR",
    ]
}

/// An `envoy.config.core.v3.Address` as read from the wire.
private struct AddressFields {
    /// Which member of the `address` oneof was last: 1 is `socket_address`.
    var member = 0
    var address = noBytes
    /// Which member of `port_specifier` was last: 3 `port_value`, 4 `named_port`.
    var portMember = 0
    var port: UInt32 = 0
    var namedPort = noBytes

    /// Reads one occurrence (the length-delimited field at `r`) over what was read before.
    mutating func merge(_ r: inout ProtobufReader) throws(ProtobufReader.WireError) {
        var m = try r.message()
        while let field = try m.next() {
            switch (field.number, field.wireType) {
            case (1, .lengthDelimited):
                // A socket address after another member starts afresh; after a socket address, merges.
                if member != 1 { self = AddressFields() }
                member = 1
                var socket = try m.message()
                while let inner = try socket.next() {
                    switch (inner.number, inner.wireType) {
                    case (2, .lengthDelimited): address = try socket.string()
                    case (3, .varint):
                        port = UInt32(truncatingIfNeeded: try socket.varint())
                        portMember = 3
                    case (4, .lengthDelimited):
                        namedPort = try socket.string()
                        portMember = 4
                    default: try socket.skip(inner)
                    }
                }
            case (2, .lengthDelimited), (3, .lengthDelimited):
                _ = try m.bytes()
                member = field.number
            default: try m.skip(field)
            }
        }
    }

    /// `ip:port` of a socket address; nil otherwise.
    func text(_ context: DecodeContext) -> String? {
        guard member == 1, !address.isEmpty else { return nil }
        let host = context.strings.string(address)
        switch portMember {
        // `contains(0x3A)` first: `String.contains(":")` compares Characters, which is slower.
        case 3: return address.contains(0x3A) && host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        case 4: return "\(host):\(String(decoding: namedPort, as: UTF8.self))"
        default: return host
        }
    }
}

// MARK: - Helpers

/// A `map<string, string>` entry: key and value, empty when absent.
///
/// A key or value with another wire type is not skipped but read on from, as SwiftProtobuf's map
/// decoding does (its bytes are then read as the next tag).
private func mapEntry(_ r: inout ProtobufReader) throws(ProtobufReader.WireError) -> (key: Bytes, value: Bytes) {
    var key = noBytes
    var value = noBytes
    while let field = try r.next() {
        switch field.number {
        case 1: if field.wireType == .lengthDelimited { key = try r.string() }
        case 2: if field.wireType == .lengthDelimited { value = try r.string() }
        default: try r.skip(field)
        }
    }
    return (key, value)
}

private func equals(_ bytes: Bytes, _ literal: StaticString) -> Bool {
    bytes.count == literal.utf8CodeUnitCount && (bytes.isEmpty || JSONReader.same(bytes.baseAddress!, literal.utf8Start, bytes.count))
}

/// `Int(String)` of the bytes.
private func integer(_ bytes: Bytes) -> Int? {
    Int(String(decoding: bytes, as: UTF8.self))
}
