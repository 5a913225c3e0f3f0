import Foundation
import Metrics
import Synchronization

/// The requests waiting for one receiver (a remote-write URL, an OTLP endpoint), kept as files in
/// the data directory so that an outage, or a restart, loses nothing up to `maxBytes`; past it the
/// oldest go first and are counted as dropped.
///
/// A segment is one ready request: `<sequence>.<fileExtension>`, a 4-byte little-endian record
/// count then the request's body. It is written to a temporary name and renamed, so a crash leaves
/// whole segments or none; it is deleted once the receiver has taken it.
final class ExportQueue: Sendable {
    struct Segment: Sendable {
        var sequence: Int64
        /// Samples, spans or log records in it.
        var records: Int
        var body: [UInt8]
        /// When it was queued (the file's modification time), for the lag.
        var queuedAt: Date
    }

    private struct State {
        /// Sequence, bytes on disk and records of every segment, oldest first.
        var segments: [(sequence: Int64, bytes: Int, records: Int)] = []
        var next: Int64 = 1
        var bytes = 0
    }

    let folder: URL
    let maxBytes: Int
    /// The segments' file extension: `rw` for remote write, `traces` and `logs` for OTLP.
    let fileExtension: String
    private let state = Mutex(State())

    init(folder: URL, maxBytes: Int, fileExtension: String = "rw") throws {
        self.folder = folder
        self.maxBytes = maxBytes
        self.fileExtension = fileExtension
        let files = FileManager.default
        try files.createDirectory(at: folder, withIntermediateDirectories: true)
        var found: [(sequence: Int64, bytes: Int, records: Int)] = []
        let suffix = "." + fileExtension
        for name in try files.contentsOfDirectory(atPath: folder.path) {
            let url = folder.appendingPathComponent(name)
            if name.hasSuffix(suffix + ".tmp") {
                try? files.removeItem(at: url)
                continue
            }
            guard name.hasSuffix(suffix), let sequence = Int64(name.dropLast(suffix.count)),
                let data = try? Data(contentsOf: url), data.count >= 4
            else { continue }
            found.append((sequence, data.count, Self.count(data)))
        }
        found.sort { $0.sequence < $1.sequence }
        state.withLock { state in
            state.segments = found
            state.next = (found.last?.sequence ?? 0) + 1
            state.bytes = found.reduce(0) { $0 + $1.bytes }
        }
    }

    /// Queues a request of `records` records; returns the records of the oldest segments dropped
    /// to stay within `maxBytes`.
    @discardableResult
    func append(body: [UInt8], records: Int) throws -> Int {
        var data = Data(capacity: body.count + 4)
        withUnsafeBytes(of: UInt32(clamping: records).littleEndian) { data.append(contentsOf: $0) }
        data.append(contentsOf: body)
        let sequence = state.withLock { state -> Int64 in
            defer { state.next += 1 }
            return state.next
        }
        let temporary = folder.appendingPathComponent("\(sequence).\(fileExtension).tmp")
        try data.write(to: temporary)
        try FileManager.default.moveItem(at: temporary, to: url(sequence))
        let dropped = state.withLock { state -> [(sequence: Int64, bytes: Int, records: Int)] in
            state.segments.append((sequence, data.count, records))
            state.bytes += data.count
            var dropped: [(sequence: Int64, bytes: Int, records: Int)] = []
            while state.bytes > maxBytes, state.segments.count > 1 {
                let oldest = state.segments.removeFirst()
                state.bytes -= oldest.bytes
                dropped.append(oldest)
            }
            return dropped
        }
        for segment in dropped { try? FileManager.default.removeItem(at: url(segment.sequence)) }
        return dropped.reduce(0) { $0 + $1.records }
    }

    /// The oldest segment, or nil when the queue is empty.
    func oldest() -> Segment? {
        oldest(maxBytes: 0).first
    }

    /// The oldest segments, at least one (when any is queued) and then as many as fit in
    /// `maxBytes` together, oldest first.
    func oldest(maxBytes: Int) -> [Segment] {
        let candidates = state.withLock { state in
            var taken: [(sequence: Int64, bytes: Int, records: Int)] = []
            var bytes = 0
            for segment in state.segments {
                if !taken.isEmpty && bytes + segment.bytes > maxBytes { break }
                taken.append(segment)
                bytes += segment.bytes
            }
            return taken
        }
        var segments: [Segment] = []
        for candidate in candidates {
            let url = url(candidate.sequence)
            guard let data = try? Data(contentsOf: url) else {
                // Dropped meanwhile.
                remove(candidate.sequence)
                continue
            }
            let modified =
                (try? FileManager.default.attributesOfItem(atPath: url.path)[.modificationDate] as? Date) ?? Date()
            segments.append(
                Segment(
                    sequence: candidate.sequence, records: candidate.records, body: [UInt8](data.dropFirst(4)),
                    queuedAt: modified))
        }
        if segments.isEmpty && !candidates.isEmpty { return oldest(maxBytes: maxBytes) }
        return segments
    }

    /// When the oldest segment was queued, without reading it; nil when the queue is empty.
    func oldestQueuedAt() -> Date? {
        guard let first = state.withLock({ $0.segments.first }) else { return nil }
        return (try? FileManager.default.attributesOfItem(atPath: url(first.sequence).path)[.modificationDate] as? Date)
            ?? Date()
    }

    /// Takes a segment off the queue (sent, or refused for good).
    func remove(_ sequence: Int64) {
        state.withLock { state in
            if let i = state.segments.firstIndex(where: { $0.sequence == sequence }) {
                state.bytes -= state.segments[i].bytes
                state.segments.remove(at: i)
            }
        }
        try? FileManager.default.removeItem(at: url(sequence))
    }

    /// Sets `<prefix>_requests`, `<prefix>_bytes` and `<prefix>_lag_seconds` (the age of the
    /// oldest request waiting) for this queue.
    func report(_ prefix: String, dimensions: [(String, String)], to metrics: some MetricsFactory) {
        Meter(label: prefix + "_requests", dimensions: dimensions, factory: metrics).set(Double(segmentCount))
        Meter(label: prefix + "_bytes", dimensions: dimensions, factory: metrics).set(Double(byteCount))
        let lag = oldestQueuedAt().map { Date().timeIntervalSince($0) } ?? 0
        Meter(label: prefix + "_lag_seconds", dimensions: dimensions, factory: metrics).set(lag)
    }

    var segmentCount: Int { state.withLock { $0.segments.count } }
    var byteCount: Int { state.withLock { $0.bytes } }

    private func url(_ sequence: Int64) -> URL {
        folder.appendingPathComponent("\(sequence).\(fileExtension)")
    }

    private static func count(_ data: Data) -> Int {
        data.prefix(4).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
    }
}
