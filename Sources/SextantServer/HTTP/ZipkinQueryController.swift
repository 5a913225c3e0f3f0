import Foundation
import Hummingbird
import NIOCore
import SextantAnalytics
import SextantModel
import SextantStore

/// Zipkin's v2 query API on the Zipkin port, so Zipkin's UI and Grafana's Zipkin data source can
/// read Sextant's traces: https://zipkin.io/zipkin-api/#/ (`zipkin2-api.yaml`).
///
/// Answers follow Zipkin's server (`ZipkinQueryApiV2`, `QueryRequest`): v2 span JSON, bad
/// parameters as `400` with a text message, an unknown trace as `404` with a text message.
/// Search criteria must hold for one span of a trace (as Zipkin's Cassandra and Elasticsearch
/// stores match), and `endTs`/`lookback` bound that span's start.
struct ZipkinQueryController: Sendable {
    let database: SextantDatabase
    /// Zipkin's `QUERY_LOOKBACK` default, in milliseconds (one day).
    static let defaultLookbackMillis: Int64 = 86_400_000
    /// The most traces one search returns, whatever `limit` asks.
    static let maxLimit = 1000

    func addRoutes(to group: RouterGroup<some RequestContext>) {
        group.get("/api/v2/services", use: services)
        group.get("/api/v2/spans", use: spanNames)
        group.get("/api/v2/remoteServices", use: remoteServices)
        group.get("/api/v2/traces", use: traces)
        group.get("/api/v2/trace/:traceId", use: trace)
        group.get("/api/v2/traceMany", use: traceMany)
        group.get("/api/v2/dependencies", use: dependencies)
        group.get("/api/v2/autocompleteKeys", use: autocompleteKeys)
        group.get("/api/v2/autocompleteValues", use: autocompleteValues)
    }

    /// `GET /api/v2/services`: every local service name, sorted.
    func services(_ request: Request, _ context: some RequestContext) async throws -> Response {
        try Self.names(try await database.spanServiceNames())
    }

    /// `GET /api/v2/spans?serviceName=`: the span names of a service, sorted.
    func spanNames(_ request: Request, _ context: some RequestContext) async throws -> Response {
        let service = try Self.required(request.uri.queryParameters, "serviceName")
        return try Self.names(try await database.spanNames(service: service))
    }

    /// `GET /api/v2/remoteServices?serviceName=`: the remote services a service's spans name, sorted.
    func remoteServices(_ request: Request, _ context: some RequestContext) async throws -> Response {
        let service = try Self.required(request.uri.queryParameters, "serviceName")
        return try Self.names(try await database.remoteServiceNames(service: service))
    }

    /// `GET /api/v2/traces`: traces with a span matching the query, newest first.
    func traces(_ request: Request, _ context: some RequestContext) async throws -> Response {
        let query = try Self.traceQuery(request.uri.queryParameters, nowMillis: database.clock.nowMillis)
        let ids = try await database.traceIDs(matching: query)
        let traces = try await database.traces(ids)
        return try Self.json(traces.map { $0.map(ZipkinSpan.init) })
    }

    /// `GET /api/v2/trace/{traceId}`: one trace's spans, or 404.
    func trace(_ request: Request, _ context: some RequestContext) async throws -> Response {
        let text = context.parameters.get("traceId") ?? ""
        let id = try Self.traceID(text)
        let spans = try await database.spans(traceID: id)
        guard !spans.isEmpty else { throw NotFound(message: "Cannot find trace \(text.lowercased())") }
        return try Self.json(spans.map(ZipkinSpan.init))
    }

    /// `GET /api/v2/traceMany?traceIds=a,b`: the traces found among at least two distinct ids.
    func traceMany(_ request: Request, _ context: some RequestContext) async throws -> Response {
        let list = try Self.required(request.uri.queryParameters, "traceIds")
        var ids: [String] = []
        for item in list.split(separator: ",", omittingEmptySubsequences: false) {
            let id = try Self.traceID(String(item.trimmingCharacters(in: .whitespaces)))
            if !ids.contains(id) { ids.append(id) }
        }
        guard ids.count >= 2 else {
            throw QueryError("traceIds must name at least two distinct trace ids; use /api/v2/trace/{traceId} for one")
        }
        let traces = try await database.traces(ids)
        return try Self.json(traces.map { $0.map(ZipkinSpan.init) })
    }

    /// `GET /api/v2/dependencies?endTs&lookback`: links between services from the stored calls.
    func dependencies(_ request: Request, _ context: some RequestContext) async throws -> Response {
        let query = request.uri.queryParameters
        guard query["endTs"] != nil else { throw QueryError("endTs is required") }
        let (from, to) = try Self.timeRange(query, nowMillis: database.clock.nowMillis)
        let aggregates = try await database.callAggregates(
            fromMicros: from, toMicros: to == .max ? .max : to + 1)
        return try Self.json(DependencyLinks(aggregates: aggregates).links.map(ZipkinLink.init))
    }

    /// `GET /api/v2/autocompleteKeys`: no tag keys are configured for autocompletion.
    func autocompleteKeys(_ request: Request, _ context: some RequestContext) async throws -> Response {
        try Self.json([String]())
    }

    /// `GET /api/v2/autocompleteValues?key=`: none, as no keys are configured.
    func autocompleteValues(_ request: Request, _ context: some RequestContext) async throws -> Response {
        _ = try Self.required(request.uri.queryParameters, "key")
        return try Self.json([String]())
    }

    // MARK: - Parameters

    /// Zipkin's `QueryRequest` from query parameters, validated as Zipkin validates it.
    static func traceQuery(_ query: Parameters, nowMillis: Int64) throws(QueryError) -> TraceQuery {
        let service = nonEmpty(query["serviceName"])
        let remote = nonEmpty(query["remoteServiceName"])
        let spanName = nonEmpty(query["spanName"]).flatMap { $0 == "all" ? nil : $0 }
        let minDuration = try long(query["minDuration"], "minDuration")
        let maxDuration = try long(query["maxDuration"], "maxDuration")
        if let minDuration, minDuration <= 0 { throw QueryError("minDuration should be positive") }
        if let maxDuration {
            guard let minDuration else { throw QueryError("minDuration is required when specifying maxDuration") }
            guard maxDuration >= minDuration else { throw QueryError("maxDuration should be >= minDuration") }
        }
        let limit = try long(query["limit"], "limit") ?? 10
        guard limit > 0 else { throw QueryError("limit should be greater than 0") }
        let (from, to) = try timeRange(query, nowMillis: nowMillis)
        return TraceQuery(
            service: service, remoteService: remote, spanName: spanName, minDurationMicros: minDuration,
            maxDurationMicros: maxDuration, annotationTerms: try annotationTerms(nonEmpty(query["annotationQuery"])),
            fromMicros: from, toMicros: to, limit: Int(min(limit, Int64(maxLimit))))
    }

    /// `endTs` and `lookback` (ms) as a closed range of µs.
    static func timeRange(_ query: Parameters, nowMillis: Int64) throws(QueryError) -> (Int64, Int64) {
        let endTs = try long(query["endTs"], "endTs") ?? nowMillis
        guard endTs > 0 else { throw QueryError("endTs should be positive, in epoch microseconds: was \(endTs)") }
        let lookback = try long(query["lookback"], "lookback") ?? defaultLookbackMillis
        guard lookback > 0 else { throw QueryError("lookback should be positive: was \(lookback)") }
        let (end, overflow) = endTs.multipliedReportingOverflow(by: 1000)
        let to = overflow ? Int64.max : end
        let (back, backOverflow) = lookback.multipliedReportingOverflow(by: 1000)
        let from = backOverflow ? 0 : max(0, to - back)
        return (from, to)
    }

    /// `annotationQuery`: terms joined by ` and `; `key=value` matches a tag, a bare word a tag key
    /// or an annotation value.
    static func annotationTerms(_ text: String?) throws(QueryError) -> [String: String] {
        guard let text else { return [:] }
        var terms: [String: String] = [:]
        for term in text.components(separatedBy: " and ") {
            let trimmed = term.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty { continue }
            if let eq = trimmed.firstIndex(of: "=") {
                let key = String(trimmed[..<eq])
                guard !key.isEmpty else { throw QueryError("annotationQuery term '\(trimmed.prefix(40))' has no key") }
                terms[key] = String(trimmed[trimmed.index(after: eq)...])
            } else {
                terms[trimmed] = ""
            }
        }
        return terms
    }

    /// A trace id of 1 to 32 hex digits as stored: lowercase, left-padded to 32.
    static func traceID(_ text: String) throws(QueryError) -> String {
        let lower = text.lowercased()
        guard (1...32).contains(lower.count), lower.allSatisfy(\.isHexDigit) else {
            throw QueryError("\(text.prefix(40)) should be a 1 to 32 character hex string")
        }
        return String(repeating: "0", count: 32 - lower.count) + lower
    }

    private static func long(_ text: Substring?, _ name: String) throws(QueryError) -> Int64? {
        guard let text else { return nil }
        guard let n = Int64(text) else { throw QueryError("\(name) must be an integer: was \(text.prefix(40))") }
        return n
    }

    private static func nonEmpty(_ text: Substring?) -> String? {
        guard let text, !text.isEmpty else { return nil }
        return String(text)
    }

    private static func required(_ query: Parameters, _ name: String) throws(QueryError) -> String {
        guard let value = nonEmpty(query[name[...]]) else { throw QueryError("\(name) is required") }
        return value
    }

    // MARK: - Answers

    private static func json(_ value: some Encodable) throws -> Response {
        try JSONResponse.make(value)
    }

    /// A name list; Zipkin lets clients cache it once more than three services exist.
    private static func names(_ names: [String]) throws -> Response {
        var response = try json(names)
        if names.count > 3 { response.headers[.cacheControl] = "max-age=300, must-revalidate" }
        return response
    }

    // MARK: - JSON

    /// A span in Zipkin's v2 JSON model.
    struct ZipkinSpan: Encodable {
        struct Endpoint: Encodable {
            var serviceName: String?
            var ipv4: String?
            var ipv6: String?
            var port: Int?

            init(_ e: Span.Endpoint) {
                serviceName = e.serviceName
                ipv4 = e.ipv4
                ipv6 = e.ipv6
                // Zipkin omits an unknown port rather than writing 0.
                port = e.port.flatMap { $0 > 0 ? $0 : nil }
            }
        }

        struct Annotation: Encodable {
            var timestamp: Int64
            var value: String
        }

        var traceId: String
        var id: String
        var parentId: String?
        var kind: String?
        var name: String?
        var timestamp: Int64?
        var duration: Int64?
        var localEndpoint: Endpoint?
        var remoteEndpoint: Endpoint?
        var annotations: [Annotation]?
        var tags: [String: String]?
        var shared: Bool?

        init(_ span: Span) {
            // 64-bit ids are stored left-padded; Zipkin writes them as 16 digits.
            traceId = span.traceID.high == 0 ? HexDigits.text(span.traceID.low) : span.traceID.hex
            id = span.spanID.hex
            parentId = span.parentID?.hex
            switch span.kind {
            case .unspecified: kind = nil
            case .client: kind = "CLIENT"
            case .server: kind = "SERVER"
            case .producer: kind = "PRODUCER"
            case .consumer: kind = "CONSUMER"
            }
            name = span.name.isEmpty ? nil : span.name
            timestamp = span.startMicros > 0 ? span.startMicros : nil
            duration = span.durationMicros > 0 ? span.durationMicros : nil
            localEndpoint = span.localEndpoint.map(Endpoint.init)
            remoteEndpoint = span.remoteEndpoint.map(Endpoint.init)
            annotations =
                span.annotations.isEmpty
                ? nil : span.annotations.map { Annotation(timestamp: $0.timestampMicros, value: $0.value) }
            var tags = span.tags.dictionary
            // Spans marked failed by their protocol (an OTLP error status) keep that mark in Zipkin's terms.
            if span.isError, tags["error"] == nil { tags["error"] = "true" }
            self.tags = tags.isEmpty ? nil : tags
            shared = span.shared ? true : nil
        }
    }

    /// Zipkin's `DependencyLink`; `errorCount` is left out when 0, as Zipkin writes it.
    struct ZipkinLink: Encodable {
        var parent: String
        var child: String
        var callCount: Int
        var errorCount: Int?

        init(_ link: DependencyLinks.Link) {
            parent = link.parent
            child = link.child
            callCount = link.callCount
            errorCount = link.errorCount > 0 ? link.errorCount : nil
        }
    }
}
