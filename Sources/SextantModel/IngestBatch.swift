/// What one decoded payload holds: records in the canonical model, plus what was rejected.
package struct IngestBatch: Sendable {
    package var spans: [Span]
    package var requests: [Request]
    package var connections: [TCPConnection]
    package var logs: [LogRecord]
    package var metrics: [MetricPoint]
    package var rejected: [RecordError]

    package init(
        spans: [Span] = [], requests: [Request] = [], connections: [TCPConnection] = [], logs: [LogRecord] = [],
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
    /// Where in the payload: an array index or a line number, counted from 1 for lines.
    package var location: String
    package var message: String

    package init(location: String, message: String) {
        self.location = location
        self.message = message
    }

    package var description: String { "\(location): \(message)" }
}
