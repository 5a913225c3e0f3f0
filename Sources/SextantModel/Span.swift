/// One span, whatever protocol it arrived in.
package struct Span: Sendable, Hashable {
    package enum Kind: Int, Sendable, Hashable {
        case unspecified = 0
        case client = 1
        case server = 2
        case producer = 3
        case consumer = 4
    }

    /// A timestamped event on a span.
    package struct Annotation: Sendable, Hashable {
        package var timestampMicros: Int64
        package var value: String

        package init(timestampMicros: Int64, value: String) {
            self.timestampMicros = timestampMicros
            self.value = value
        }
    }

    /// A host taking part in a span.
    package struct Endpoint: Sendable, Hashable {
        package var serviceName: String?
        package var ipv4: String?
        package var ipv6: String?
        package var port: Int?

        package init(serviceName: String? = nil, ipv4: String? = nil, ipv6: String? = nil, port: Int? = nil) {
            self.serviceName = serviceName
            self.ipv4 = ipv4
            self.ipv6 = ipv6
            self.port = port
        }
    }

    package var traceID: TraceID
    package var spanID: SpanID
    package var parentID: SpanID?
    package var kind: Kind
    package var name: String
    package var startMicros: Int64
    package var durationMicros: Int64
    package var localEndpoint: Endpoint?
    package var remoteEndpoint: Endpoint?
    package var annotations: [Annotation]
    package var tags: Attributes
    package var isError: Bool
    package var shared: Bool
    package var debug: Bool

    package init(
        traceID: TraceID,
        spanID: SpanID,
        parentID: SpanID? = nil,
        kind: Kind = .unspecified,
        name: String = "",
        startMicros: Int64,
        durationMicros: Int64,
        localEndpoint: Endpoint? = nil,
        remoteEndpoint: Endpoint? = nil,
        annotations: [Annotation] = [],
        tags: Attributes = [:],
        isError: Bool? = nil,
        shared: Bool = false,
        debug: Bool = false
    ) {
        self.traceID = traceID
        self.spanID = spanID
        self.parentID = parentID
        self.kind = kind
        self.name = name
        self.startMicros = startMicros
        self.durationMicros = durationMicros
        self.localEndpoint = localEndpoint
        self.remoteEndpoint = remoteEndpoint
        self.annotations = annotations
        self.tags = tags
        self.isError = isError ?? (tags["error"] != nil)
        self.shared = shared
        self.debug = debug
    }

    /// The local service name, or `unknown`.
    package var serviceName: String {
        localEndpoint?.serviceName ?? "unknown"
    }
}
