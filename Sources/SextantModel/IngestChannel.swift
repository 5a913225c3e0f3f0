/// The telemetry channel a record arrived on. Raw values are bits so a stored call can remember
/// every channel that reported it.
package struct IngestChannel: OptionSet, Sendable, Hashable {
    package let rawValue: Int

    package init(rawValue: Int) {
        self.rawValue = rawValue
    }

    /// Spans (Zipkin, OTLP traces).
    package static let spans = IngestChannel(rawValue: 1)
    /// Envoy access-log lines (JSON files, HTTP upload).
    package static let accessLog = IngestChannel(rawValue: 2)
    /// Envoy gRPC access log service.
    package static let als = IngestChannel(rawValue: 4)
    /// OpenTelemetry logs carrying Envoy access-log records.
    package static let otlpLogs = IngestChannel(rawValue: 8)

    private static let names: [(IngestChannel, String)] = [
        (.spans, "spans"), (.accessLog, "accesslog"), (.als, "als"), (.otlpLogs, "otlplogs"),
    ]

    /// The channel names, in a fixed order, for API output.
    package var names: [String] {
        Self.names.filter { contains($0.0) }.map(\.1)
    }
}
