package import SextantModel
#if canImport(Glibc)
internal import Glibc
#elseif canImport(Darwin)
internal import Darwin
#endif

/// Turns a span written by an Envoy sidecar into the call it observed.
///
/// Envoy's tracers tag each span with the proxy's `node_id` and the `upstream_cluster`; Istio
/// adds `istio.canonical_service`, `istio.canonical_revision` and `istio.namespace`. Spans
/// without `node_id` are application spans and map to no `CallReport`.
package enum EnvoySpanMapper {
    /// - Parameter nodeID: the proxy's node id when the span itself lacks the `node_id` tag (the
    ///   OpenTelemetry tracer puts it in the resource's `service.instance.id`).
    package static func request(from span: Span, nodeID fallback: String? = nil) -> CallReport? {
        request(from: span, envoy: EnvoySpanTags(span.tags), nodeID: fallback, context: nil)
    }

    /// The call of a span whose Envoy tags a decoder has already picked out while reading it.
    ///
    /// Which proxy reported it, on which side and naming which service depends only on a few tag
    /// values that a mesh repeats on every span of a route (node id, cluster, authority, Istio
    /// labels), so with a context that answer is memoised by those values' bytes and each span
    /// pays only for what is its own (times, codes, sizes, request id).
    static func request(
        from span: Span, envoy tags: EnvoySpanTags, nodeID fallback: String? = nil, context: DecodeContext?
    ) -> CallReport? {
        guard tags.has(.upstreamCluster) || tags.has(.nodeID), tags.has(.nodeID) || fallback != nil else { return nil }
        guard span.kind == .client || span.kind == .server else { return nil }
        let routed: RoutedSpan?
        if let context {
            routed = context.routedSpan(
                matching: { key in tags.routeKey(span: span, fallback: fallback, matches: key) },
                key: { key in tags.routeKey(span: span, fallback: fallback, into: &key) }
            ) {
                route(span: span, tags: tags, fallback: fallback, context: context)
            }
        } else {
            routed = route(span: span, tags: tags, fallback: fallback, context: nil)
        }
        guard let routed else { return nil }
        let grpcStatus = tags.integer(.grpcStatusCode, span.tags).map { Int($0) }
        return CallReport(
            reporter: routed.reporter,
            proxy: routed.proxy,
            service: routed.service,
            requestProtocol: grpcStatus != nil ? .grpc : .http,
            startMicros: span.startMicros,
            durationMicros: span.durationMicros,
            responseCode: tags.integer(.httpStatusCode, span.tags).map { Int($0) } ?? 0,
            grpcStatus: grpcStatus,
            responseFlags: tags.text(.responseFlags, span.tags).flatMap { $0.isEmpty ? nil : $0 } ?? "-",
            requestBytes: tags.integer(.requestSize, span.tags) ?? 0,
            responseBytes: tags.integer(.responseSize, span.tags) ?? 0,
            requestID: tags.text(.requestID, span.tags),
            traceID: span.traceID,
            spanID: span.spanID,
            parentSpanID: span.parentID,
            channel: .spans
        )
    }

    /// The proxy, side and service of a span: Istio's rule (`Route`) over its tags' text.
    private static func route(span: Span, tags: EnvoySpanTags, fallback: String?, context: DecodeContext?) -> RoutedSpan? {
        guard let nodeID = tags.text(.nodeID, span.tags) ?? fallback,
            let node = context.map({ $0.node(nodeID) }) ?? NodeIdentity.parsed(nodeID: nodeID)
        else { return nil }
        let proxy = identity(node: node, tags: tags, in: span.tags)
        let authority = tags.text(.httpURL, span.tags).flatMap { Self.authority(ofURL: $0) }
        let route = Route(
            cluster: tags.text(.upstreamCluster, span.tags) ?? "", authority: authority, proxy: proxy,
            inboundByDefault: span.kind == .server, context: context)
        return RoutedSpan(reporter: route.reporter, proxy: proxy, service: route.service)
    }

    /// The proxy's identity from its node id, refined by the Istio tags on the span.
    static func identity(node: NodeIdentity, tags: EnvoySpanTags, in attributes: Attributes) -> WorkloadIdentity {
        var identity = node.workload
        if let ns = tags.text(.istioNamespace, attributes), !ns.isEmpty { identity.namespace = ns }
        if let app = tags.text(.canonicalService, attributes), !app.isEmpty {
            identity.canonicalService = app
            identity.app = app
        }
        if let rev = tags.text(.canonicalRevision, attributes), !rev.isEmpty {
            identity.canonicalRevision = rev
            identity.version = rev
        }
        if let cluster = tags.text(.clusterID, attributes), !cluster.isEmpty { identity.cluster = cluster }
        return identity
    }

    /// `http://details:9080/details/0` → `details:9080`.
    static func authority(ofURL url: String) -> String? {
        var url = url
        return url.withUTF8 { bytes in
            authority(ofURL: UnsafeRawBufferPointer(bytes)).map { String(decoding: $0, as: UTF8.self) }
        }
    }

    /// The authority's bytes within a URL's: after the first `://`, up to `/`, `?` or `#`.
    static func authority(ofURL url: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer? {
        guard url.count >= 3 else { return nil }
        var i = 0
        while i + 3 <= url.count, !(url[i] == 0x3A && url[i + 1] == 0x2F && url[i + 2] == 0x2F) { i += 1 }
        guard i + 3 <= url.count else { return nil }
        let start = i + 3
        var end = start
        while end < url.count, url[end] != 0x2F, url[end] != 0x3F, url[end] != 0x23 { end += 1 }
        return end > start ? UnsafeRawBufferPointer(rebasing: url[start..<end]) : nil
    }
}

/// Who reported a span's call, on which side, naming which service.
struct RoutedSpan: Sendable {
    var reporter: Reporter
    var proxy: WorkloadIdentity
    var service: ServiceRef
}

/// The span tags that say which call an Envoy proxy's span observed, as the positions of their
/// pairs in the span's `Attributes`: picking them out while reading makes no string.
struct EnvoySpanTags {
    enum Tag: Int, CaseIterable {
        case nodeID, upstreamCluster, httpURL, httpStatusCode, grpcStatusCode, responseFlags, requestSize
        case responseSize, requestID, istioNamespace, canonicalService, canonicalRevision, clusterID
        /// Zipkin's `error` tag: the span failed.
        case error
    }

    /// Each tag's pair position plus one; 0 when the span has no such tag.
    private var positions: (UInt16, UInt16, UInt16, UInt16, UInt16, UInt16, UInt16, UInt16, UInt16, UInt16, UInt16, UInt16, UInt16, UInt16) =
        (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)

    init() {}

    /// Picks the tags out of a span's attributes.
    init(_ tags: Attributes) {
        for i in tags.indices {
            tags.withPair(at: i) { key, _ in _ = take(key: key, position: i) }
        }
    }

    private func position(_ tag: Tag) -> Int? {
        let stored = withUnsafeBytes(of: positions) { $0.load(fromByteOffset: tag.rawValue * 2, as: UInt16.self) }
        return stored == 0 ? nil : Int(stored) - 1
    }

    private mutating func set(_ tag: Tag, _ position: Int) {
        withUnsafeMutableBytes(of: &positions) { $0.storeBytes(of: UInt16(position + 1), toByteOffset: tag.rawValue * 2, as: UInt16.self) }
    }

    func has(_ tag: Tag) -> Bool { position(tag) != nil }

    /// The tag's value as text.
    func text(_ tag: Tag, _ attributes: Attributes) -> String? {
        position(tag).map { attributes.withPair(at: $0) { _, value in String(decoding: value, as: UTF8.self) } }
    }

    /// The tag's value as a decimal integer (an optional sign, then digits), as `Int64(text)` reads it.
    func integer(_ tag: Tag, _ attributes: Attributes) -> Int64? {
        withValue(tag, attributes) { value in
            guard let value, !value.isEmpty else { return nil }
            var i = 0
            let negative = value[0] == UInt8(ascii: "-")
            if negative || value[0] == UInt8(ascii: "+") { i = 1 }
            guard i < value.count else { return nil }
            var result: Int64 = 0
            while i < value.count {
                let digit = value[i] &- UInt8(ascii: "0")
                guard digit < 10 else { return nil }
                let (times, o1) = result.multipliedReportingOverflow(by: 10)
                let (sum, o2) = negative ? times.subtractingReportingOverflow(Int64(digit)) : times.addingReportingOverflow(Int64(digit))
                guard !o1, !o2 else { return nil }
                result = sum
                i += 1
            }
            return result
        }
    }

    /// Calls `body` with the tag's value bytes, or nil without the tag.
    func withValue<R>(_ tag: Tag, _ attributes: Attributes, _ body: (UnsafeRawBufferPointer?) -> R) -> R {
        guard let at = position(tag) else { return body(nil) }
        return attributes.withPair(at: at) { _, value in body(value) }
    }

    private static let routeTags: [Tag] = [
        .nodeID, .upstreamCluster, .httpURL, .istioNamespace, .canonicalService, .canonicalRevision, .clusterID,
    ]

    /// The bytes that decide a span's `RoutedSpan`: its kind and the values of the tags `route`
    /// reads (the URL by its authority only), each after a separator byte no UTF-8 text holds.
    func routeKey(span: Span, fallback: String?, into key: inout [UInt8]) {
        key.append(UInt8(truncatingIfNeeded: span.kind.rawValue))
        for tag in Self.routeTags {
            withValue(tag, span.tags) { value in
                guard var value else {
                    key.append(0xFE)
                    if tag == .nodeID, var fallback { fallback.withUTF8 { key.append(contentsOf: $0) } }
                    return
                }
                key.append(0xFF)
                if tag == .httpURL { value = EnvoySpanMapper.authority(ofURL: value) ?? UnsafeRawBufferPointer(start: nil, count: 0) }
                key.append(contentsOf: value.assumingMemoryBound(to: UInt8.self))
            }
        }
    }

    /// Whether `key` is what `routeKey(span:fallback:into:)` would write for this span, compared
    /// in place.
    func routeKey(span: Span, fallback: String?, matches key: [UInt8]) -> Bool {
        span.tags.withUnsafeBytes { all in
            key.withUnsafeBytes { k in
                guard k.count > 0, k[0] == UInt8(truncatingIfNeeded: span.kind.rawValue) else { return false }
                var at = 1
                func take(_ separator: UInt8, _ value: UnsafeRawBufferPointer) -> Bool {
                    guard at + 1 + value.count <= k.count, k[at] == separator else { return false }
                    at += 1
                    guard value.isEmpty || memcmp(k.baseAddress! + at, value.baseAddress!, value.count) == 0 else { return false }
                    at += value.count
                    return true
                }
                for tag in Self.routeTags {
                    if let p = position(tag) {
                        var value = UnsafeRawBufferPointer(rebasing: all[span.tags.valueRange(at: p)])
                        if tag == .httpURL { value = EnvoySpanMapper.authority(ofURL: value) ?? UnsafeRawBufferPointer(start: nil, count: 0) }
                        guard take(0xFF, value) else { return false }
                    } else if tag == .nodeID, var fallback {
                        guard fallback.withUTF8({ take(0xFE, UnsafeRawBufferPointer($0)) }) else { return false }
                    } else {
                        guard take(0xFE, UnsafeRawBufferPointer(start: nil, count: 0)) else { return false }
                    }
                }
                return at == k.count
            }
        }
    }

    /// Notes the position of the pair with `key` (raw UTF-8) if it is one of the tags above;
    /// returns whether it was.
    @inline(__always)
    mutating func take(key: UnsafeRawBufferPointer, position: Int) -> Bool {
        func equals(_ literal: StaticString) -> Bool {
            guard key.count == literal.utf8CodeUnitCount else { return false }
            return JSONReader.same(key.baseAddress!, literal.utf8Start, key.count)
        }
        guard position < Int(UInt16.max) else { return false }
        let tag: Tag
        switch key.count {
        case 5 where equals("error"): tag = .error
        case 7 where equals("node_id"): tag = .nodeID
        case 8 where equals("http.url"): tag = .httpURL
        case 12 where equals("request_size"): tag = .requestSize
        case 13 where equals("response_size"): tag = .responseSize
        case 14 where equals("response_flags"): tag = .responseFlags
        case 15 where equals("istio.namespace"): tag = .istioNamespace
        case 16 where equals("upstream_cluster"): tag = .upstreamCluster
        case 16 where equals("http.status_code"): tag = .httpStatusCode
        case 16 where equals("grpc.status_code"): tag = .grpcStatusCode
        case 16 where equals("istio.cluster_id"): tag = .clusterID
        case 17 where equals("guid:x-request-id"): tag = .requestID
        case 23 where equals("istio.canonical_service"): tag = .canonicalService
        case 24 where equals("istio.canonical_revision"): tag = .canonicalRevision
        default: return false
        }
        set(tag, position)
        return true
    }
}
