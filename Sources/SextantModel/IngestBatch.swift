/// What one decoded payload holds: records in the canonical model, plus what was rejected.
package struct IngestBatch: Sendable {
    package var spans: [Span]
    package var requests: [CallReport]
    package var connections: [TCPConnection]
    package var logs: [LogRecord]
    package var metrics: [MetricPoint]
    package var rejected: [RecordError]

    package init(
        spans: [Span] = [], requests: [CallReport] = [], connections: [TCPConnection] = [], logs: [LogRecord] = [],
        metrics: [MetricPoint] = [], rejected: [RecordError] = []
    ) {
        self.spans = spans
        self.requests = requests
        self.connections = connections
        self.logs = logs
        self.metrics = metrics
        self.rejected = rejected
    }

    /// How many records will be stored.
    package var recordCount: Int { spans.count + requests.count + connections.count + logs.count + metrics.count }

    package mutating func append(contentsOf other: IngestBatch) {
        spans += other.spans
        requests += other.requests
        connections += other.connections
        logs += other.logs
        metrics += other.metrics
        rejected += other.rejected
    }
}

/// One record of a batch that could not be used, and why.
package struct RecordError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Which rule the record broke, for Sextant's own counters.
    package enum Reason: String, Sendable, Hashable, CaseIterable {
        /// The record does not follow its protocol (a missing id, a value of the wrong type).
        case invalid
        /// The record ends before it starts.
        case negativeDuration = "negative_duration"
        /// The record's time is further ahead of Sextant's clock than `--max-clock-skew`.
        case futureTimestamp = "future_timestamp"
        /// A metric point has more labels than `--max-attributes-per-record`.
        case tooManyLabels = "too_many_labels"
        /// A metric name, label name or label value is longer than `--max-string-bytes`.
        case labelTooLong = "label_too_long"
        /// A metric point would start a series past `--max-series-per-metric`.
        case seriesLimit = "series_limit"
        /// statsd points past what one flush may hold.
        case tooManyRecords = "too_many_records"
    }

    /// Where in the payload: an array index or a line number, counted from 1 for lines.
    package var location: String
    package var message: String
    package var reason: Reason

    package init(location: String, message: String, reason: Reason = .invalid) {
        self.location = location
        self.message = message
        self.reason = reason
    }

    package var description: String { "\(location): \(message)" }
}
