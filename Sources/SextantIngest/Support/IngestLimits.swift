package import SextantModel

/// The limits every receiver applies to decoded records before they are stored.
///
/// Whole requests with too many records are refused. A record that cannot be right (it ends
/// before it starts, or lies too far in the future) is rejected on its own and the rest of the
/// batch is kept. Spans and log records keep going when they are merely large: excess attributes
/// are dropped and long strings truncated, as OpenTelemetry's attribute limits do. Metric points
/// are rejected instead, because dropping or shortening a label would merge distinct series.
package struct IngestLimits: Sendable, Hashable {
    /// Spans, log entries, TCP connections or metric points one request (or one stream message)
    /// may hold (flag `--max-records-per-request`, default 100,000).
    package var maxRecordsPerRequest = 100_000
    /// Attributes (span tags, log attributes, span events) one record keeps; metric points with
    /// more labels are rejected (flag `--max-attributes-per-record`, default 128).
    package var maxAttributesPerRecord = 128
    /// Bytes of UTF-8 a string keeps (attribute values, span names, log bodies); longer metric
    /// names and labels are rejected (flag `--max-string-bytes`, default 16 KiB).
    package var maxStringBytes = 16 << 10
    /// How far ahead of Sextant's clock a record's time may be, in microseconds
    /// (flag `--max-clock-skew`, default 10 minutes).
    package var maxFutureMicros: Int64 = 10 * 60 * 1_000_000

    package init() {}

    /// What enforcing the limits changed in records that were kept.
    package struct Report: Sendable, Hashable {
        /// Strings shortened to `maxStringBytes`.
        package var truncatedStrings = 0
        /// Attributes and span events dropped past `maxAttributesPerRecord`.
        package var droppedAttributes = 0

        package init() {}
    }

    /// How many records the sender put in the batch: what was decoded, what was rejected, and
    /// not the calls derived from spans.
    package static func sentRecords(_ batch: IngestBatch) -> Int {
        batch.spans.count + (batch.spans.isEmpty ? batch.requests.count : 0) + batch.connections.count
            + batch.logs.count + batch.metrics.count + batch.rejected.count
    }

    /// Refuses a batch with more records than one request may hold.
    /// - Throws: `DecodeError` `.tooManyRecords`.
    package func checkCount(_ batch: IngestBatch) throws(DecodeError) {
        let count = Self.sentRecords(batch)
        guard count <= maxRecordsPerRequest else {
            throw DecodeError(
                .tooManyRecords,
                "request holds \(count) records; the limit is \(maxRecordsPerRequest) (--max-records-per-request), split it")
        }
    }

    /// Rejects the records that break a limit (into `batch.rejected`) and trims the ones that are
    /// merely large.
    /// - Parameter nowMicros: Sextant's clock, µs since the epoch.
    package func apply(to batch: inout IngestBatch, nowMicros: Int64) -> Report {
        var report = Report()
        let latest = nowMicros > Int64.max - maxFutureMicros ? Int64.max : nowMicros + maxFutureMicros

        // Checked and trimmed in place; the arrays are rebuilt only when a record is rejected.
        var rejectedSpans = Set<SpanKey>()
        for i in batch.spans.indices {
            let (start, duration) = (batch.spans[i].startMicros, batch.spans[i].durationMicros)
            if let error = timing(
                start: start, duration: duration, latest: latest,
                location: "span \(batch.spans[i].spanID) of trace \(batch.spans[i].traceID)")
            {
                batch.rejected.append(error)
                rejectedSpans.insert(SpanKey(traceID: batch.spans[i].traceID, spanID: batch.spans[i].spanID))
                continue
            }
            trim(&batch.spans[i], report: &report)
        }
        if !rejectedSpans.isEmpty {
            batch.spans.removeAll { rejectedSpans.contains(SpanKey(traceID: $0.traceID, spanID: $0.spanID)) }
        }

        var rejectedRequests = Set<Int>()
        // By index: each report is read where it lies, not copied out with its strings retained.
        for i in batch.requests.indices {
            if !rejectedSpans.isEmpty, let traceID = batch.requests[i].traceID, let spanID = batch.requests[i].spanID,
                rejectedSpans.contains(SpanKey(traceID: traceID, spanID: spanID))
            {
                rejectedRequests.insert(i)
                continue  // the call of a span rejected above, which is reported already
            }
            let (start, duration) = (batch.requests[i].startMicros, batch.requests[i].durationMicros)
            if let error = timing(
                start: start, duration: duration, latest: latest,
                location: batch.requests[i].requestID.map { "entry with request id \(clip($0))" } ?? "entry at \(start) µs")
            {
                batch.rejected.append(error)
                rejectedRequests.insert(i)
                continue
            }
            trim(&batch.requests[i].requestID, report: &report)
            trim(&batch.requests[i].localAddress, report: &report)
            trim(&batch.requests[i].remoteAddress, report: &report)
        }
        if !rejectedRequests.isEmpty {
            batch.requests = batch.requests.indices.filter { !rejectedRequests.contains($0) }.map { batch.requests[$0] }
        }

        batch.connections = batch.connections.filter { connection in
            guard
                let error = timing(
                    start: connection.startMicros, duration: connection.durationMicros, latest: latest,
                    location: "connection at \(connection.startMicros) µs from \(connection.remoteAddress ?? "-")")
            else { return true }
            batch.rejected.append(error)
            return false
        }

        var logs: [LogRecord] = []
        logs.reserveCapacity(batch.logs.count)
        for var log in batch.logs {
            if log.timeMicros > latest {
                batch.rejected.append(future(log.timeMicros, now: nowMicros, location: "log record of \(clip(log.service))"))
                continue
            }
            if let short = truncated(log.body) {
                log.body = short
                report.truncatedStrings += 1
            }
            if let short = truncated(log.severityText) {
                log.severityText = short
                report.truncatedStrings += 1
            }
            log.attributes = trim(Attributes(log.attributes), report: &report).dictionary
            logs.append(log)
        }
        batch.logs = logs

        batch.metrics = batch.metrics.filter { point in
            if let error = check(point, latest: latest, now: nowMicros) {
                batch.rejected.append(error)
                return false
            }
            return true
        }
        return report
    }

    // MARK: - Rules

    private struct SpanKey: Hashable {
        var traceID: TraceID
        var spanID: SpanID
    }

    /// The longest duration a span, call or connection may have: a year, in µs.
    static let maxDurationMicros: Int64 = 366 * 86_400 * 1_000_000

    private func timing(
        start: Int64, duration: Int64, latest: Int64, location: @autoclosure () -> String
    ) -> RecordError? {
        if duration < 0 {
            return RecordError(
                location: location(), message: "duration \(duration) µs is negative", reason: .negativeDuration)
        }
        // Sums of durations over windows and tiers stay far inside 64 bits with this bound.
        if duration > Self.maxDurationMicros {
            return RecordError(
                location: location(), message: "duration \(duration) µs is longer than a year", reason: .invalid)
        }
        if start > latest {
            return future(start, now: latest - maxFutureMicros, location: location())
        }
        return nil
    }

    private func future(_ micros: Int64, now: Int64, location: String) -> RecordError {
        let ahead = micros / 1_000_000 - now / 1_000_000
        return RecordError(
            location: location,
            message: "time is \(ahead) s ahead of the collector's clock; at most \(maxFutureMicros / 1_000_000) s "
                + "(--max-clock-skew)",
            reason: .futureTimestamp)
    }

    private func check(_ point: MetricPoint, latest: Int64, now: Int64) -> RecordError? {
        let location = "point of \(clip(point.name))"
        if point.timestampMs > latest / 1000 {
            return future(point.timestampMs.multipliedReportingOverflow(by: 1000).partialValue, now: now, location: location)
        }
        if point.labels.count > maxAttributesPerRecord {
            return RecordError(
                location: location,
                message: "\(point.labels.count) labels; at most \(maxAttributesPerRecord) (--max-attributes-per-record)",
                reason: .tooManyLabels)
        }
        if point.name.utf8.count > maxStringBytes {
            return RecordError(
                location: location, message: "metric name is longer than \(maxStringBytes) bytes (--max-string-bytes)",
                reason: .labelTooLong)
        }
        if let long = point.labels.first(where: { $0.name.utf8.count > maxStringBytes || $0.value.utf8.count > maxStringBytes }) {
            return RecordError(
                location: location,
                message: "label '\(clip(long.name))' is longer than \(maxStringBytes) bytes (--max-string-bytes)",
                reason: .labelTooLong)
        }
        return nil
    }

    private func trim(_ span: inout Span, report: inout Report) {
        if let short = truncated(span.name) {
            span.name = short
            report.truncatedStrings += 1
        }
        if span.tags.count > maxAttributesPerRecord || span.tags.longestString > maxStringBytes {
            span.tags = trim(span.tags, report: &report)
        }
        if span.annotations.count > maxAttributesPerRecord {
            report.droppedAttributes += span.annotations.count - maxAttributesPerRecord
            span.annotations.removeLast(span.annotations.count - maxAttributesPerRecord)
        }
        for i in span.annotations.indices {
            if let short = truncated(span.annotations[i].value) {
                span.annotations[i].value = short
                report.truncatedStrings += 1
            }
        }
        trim(&span.localEndpoint, report: &report)
        trim(&span.remoteEndpoint, report: &report)
    }

    private func trim(_ endpoint: inout Span.Endpoint?, report: inout Report) {
        guard endpoint != nil else { return }
        trim(&endpoint!.serviceName, report: &report)
    }

    private func trim(_ text: inout String?, report: inout Report) {
        if let long = text, let short = truncated(long) {
            text = short
            report.truncatedStrings += 1
        }
    }

    /// Keeps the first `maxAttributesPerRecord` attributes by name (a stable choice), each name
    /// and value at most `maxStringBytes`.
    private func trim(_ attributes: Attributes, report: inout Report) -> Attributes {
        guard attributes.count > maxAttributesPerRecord || attributes.longestString > maxStringBytes else {
            return attributes
        }
        var keys = attributes.map(\.key)
        if keys.count > maxAttributesPerRecord {
            keys.sort()
            report.droppedAttributes += keys.count - maxAttributesPerRecord
            keys.removeLast(keys.count - maxAttributesPerRecord)
        }
        var kept = Attributes(minimumCapacity: keys.count)
        for key in keys {
            var value = attributes[key]!
            if let short = truncated(value) {
                value = short
                report.truncatedStrings += 1
            }
            var name = key
            if let short = truncated(key) {
                name = short
                report.truncatedStrings += 1
            }
            kept[name] = value
        }
        return kept
    }

    /// The text cut to `maxStringBytes` of UTF-8 on a scalar boundary, or nil when it fits.
    package func truncated(_ text: String) -> String? {
        guard text.utf8.count > maxStringBytes else { return nil }
        var kept = String.UnicodeScalarView()
        var bytes = 0
        for scalar in text.unicodeScalars {
            bytes += UTF8.width(scalar)
            if bytes > maxStringBytes { break }
            kept.append(scalar)
        }
        return String(kept)
    }

    /// A name quoted in a message, never longer than 120 characters.
    private func clip(_ text: String) -> String {
        text.count > 120 ? String(text.prefix(117)) + "..." : text
    }
}
