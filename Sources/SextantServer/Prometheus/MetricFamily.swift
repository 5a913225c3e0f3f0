/// The metric type announced on a family's `# TYPE` line.
package enum MetricType: String, Sendable {
    case counter
    case gauge
    case histogram
    case summary
    case untyped
}

/// One label pair of a sample.
package struct MetricLabel: Sendable, Hashable {
    /// The label name; callers guarantee the legacy charset `[a-zA-Z_][a-zA-Z0-9_]*`.
    package var name: String
    /// The raw (unescaped) label value.
    package var value: String

    /// Creates a label from its name and raw value.
    package init(name: String, value: String) {
        self.name = name
        self.value = value
    }

    /// Creates a label from its name and raw value without argument labels.
    package init(_ name: String, _ value: String) {
        self.init(name: name, value: value)
    }
}

/// One exposition line: a sample name, its labels, a value and an optional timestamp.
package struct MetricSample: Sendable, Equatable {
    /// The sample name, e.g. `x_bucket` for a histogram family `x`.
    package var name: String
    /// The labels in the order they are written (histogram buckets carry `le`).
    package var labels: [MetricLabel]
    /// The sample value.
    package var value: Double
    /// Milliseconds since the Unix epoch, or `nil` for "scrape time".
    package var timestampMs: Int64?

    /// Creates a sample.
    package init(name: String, labels: [MetricLabel] = [], value: Double, timestampMs: Int64? = nil) {
        self.name = name
        self.labels = labels
        self.value = value
        self.timestampMs = timestampMs
    }
}

/// A named group of samples sharing HELP and TYPE metadata.
///
/// For a histogram family `x` the samples are `x_bucket` (with `le`), `x_sum` and `x_count`;
/// for a counter the family name is the sample name, e.g. `istio_requests_total`.
package struct MetricFamily: Sendable, Equatable {
    /// The family name as written on the 0.0.4 `# TYPE` line.
    package var name: String
    /// The docstring for `# HELP`, or `nil` to omit the line.
    package var help: String?
    /// The metric type.
    package var type: MetricType
    /// The samples of every series in the family.
    package var samples: [MetricSample]

    /// Creates a family.
    package init(name: String, help: String? = nil, type: MetricType, samples: [MetricSample] = []) {
        self.name = name
        self.help = help
        self.type = type
        self.samples = samples
    }
}
