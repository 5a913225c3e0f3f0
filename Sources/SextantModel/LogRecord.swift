/// One application log record (OpenTelemetry logs that are not Envoy access logs).
package struct LogRecord: Sendable, Hashable {
    /// µs since the epoch (the record's time, else when it was observed).
    package var timeMicros: Int64
    /// The service that wrote it (`service.name`), or `unknown`.
    package var service: String
    /// OpenTelemetry severity number (1–24; 0 unspecified).
    package var severityNumber: Int
    package var severityText: String
    package var body: String
    package var traceID: String?
    package var spanID: String?
    /// Resource and record attributes, flattened to text.
    package var attributes: [String: String]

    package init(
        timeMicros: Int64, service: String, severityNumber: Int = 0, severityText: String = "", body: String,
        traceID: String? = nil, spanID: String? = nil, attributes: [String: String] = [:]
    ) {
        self.timeMicros = timeMicros
        self.service = service
        self.severityNumber = severityNumber
        self.severityText = severityText
        self.body = body
        self.traceID = traceID
        self.spanID = spanID
        self.attributes = attributes
    }
}
