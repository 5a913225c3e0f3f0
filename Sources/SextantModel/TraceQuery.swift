/// A trace search. Every criterion must hold for one span of a trace for the trace to match;
/// traces come back newest matching span first.
package struct TraceQuery: Sendable, Hashable {
    /// The span's local service (Zipkin `serviceName`).
    package var service: String?
    /// The span's remote service (Zipkin `remoteServiceName`).
    package var remoteService: String?
    /// The span's name (operation).
    package var spanName: String?
    package var minDurationMicros: Int64?
    package var maxDurationMicros: Int64?
    /// Only spans marked as errors.
    package var errorOnly: Bool
    /// Zipkin annotation-query terms: tag key → value, where an empty value matches a tag with
    /// that key of any value or an annotation with that value.
    package var annotationTerms: [String: String]
    /// The span started in `[fromMicros, toMicros]`.
    package var fromMicros: Int64
    package var toMicros: Int64
    /// At most this many traces.
    package var limit: Int

    package init(
        service: String? = nil, remoteService: String? = nil, spanName: String? = nil,
        minDurationMicros: Int64? = nil, maxDurationMicros: Int64? = nil, errorOnly: Bool = false,
        annotationTerms: [String: String] = [:], fromMicros: Int64, toMicros: Int64, limit: Int
    ) {
        self.service = service
        self.remoteService = remoteService
        self.spanName = spanName
        self.minDurationMicros = minDurationMicros
        self.maxDurationMicros = maxDurationMicros
        self.errorOnly = errorOnly
        self.annotationTerms = annotationTerms
        self.fromMicros = fromMicros
        self.toMicros = toMicros
        self.limit = limit
    }

    /// Whether a span's tags and annotations satisfy every annotation-query term.
    package func matchesAnnotationTerms(tags: Attributes, annotations: [Span.Annotation]) -> Bool {
        annotationTerms.allSatisfy { key, value in
            if value.isEmpty {
                return tags[key] != nil || annotations.contains { $0.value == key }
            }
            return tags[key] == value
        }
    }
}
