import AsyncHTTPClient
import Foundation
import NIOCore
import ServiceLifecycle

/// What a receiver did with one request.
enum Delivery: Sendable, Equatable {
    /// Taken (2xx); `rejected` of its records were refused inside it (OTLP's partial success).
    case accepted(rejected: Int)
    /// Not now (429, 5xx, gRPC UNAVAILABLE, no connection): sent again after `after` seconds, or
    /// after the backoff.
    case retry(after: Double?)
    /// Never (any other answer): dropped, with the receiver's reason.
    case refused(String)
}

/// Sends a durable queue's segments to one receiver, oldest first, until the service shuts down:
/// a request leaves the queue once the receiver has answered it for good, and is sent again with
/// backoff (1 s doubling to 30 s, or the receiver's own delay) while it answers "not now".
struct QueueSender: Sendable {
    /// What happened to a request's records, for the exporters' counters.
    enum Outcome: String, Sendable {
        case sent, retried, dropped, rejected
    }

    let queue: ExportQueue
    /// Segments taken into one request, up to this many bytes together (0: one a request).
    var requestBytes = 0

    /// - Parameters:
    ///   - body: one request's body from its segments (oldest first).
    ///   - deliver: sends a body and says what the receiver did.
    ///   - count: called with each outcome and how many records it concerns.
    ///   - refused: called when a request is refused for good, with the receiver's reason.
    ///   - idle: called before each look at the queue (for gauges).
    func run(
        body: @Sendable ([ExportQueue.Segment]) -> [UInt8],
        deliver: @Sendable ([UInt8]) async -> Delivery,
        count: @Sendable (Outcome, Int) -> Void,
        refused: @Sendable (String) -> Void,
        idle: @Sendable () -> Void = {}
    ) async {
        var backoff: Double = 1
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            idle()
            let segments = queue.oldest(maxBytes: requestBytes)
            guard !segments.isEmpty else {
                try? await Task.sleep(for: .milliseconds(250))
                continue
            }
            let records = segments.reduce(0) { $0 + $1.records }
            switch await deliver(body(segments)) {
            case .accepted(let rejected):
                for segment in segments { queue.remove(segment.sequence) }
                count(.sent, records - rejected)
                if rejected > 0 { count(.rejected, rejected) }
                backoff = 1
            case .refused(let reason):
                for segment in segments { queue.remove(segment.sequence) }
                count(.dropped, records)
                refused(reason)
            case .retry(let after):
                count(.retried, records)
                try? await Task.sleep(for: .seconds(after ?? backoff))
                backoff = min(30, backoff * 2)
            }
        }
    }
}

/// One POST of an exporter's request body.
enum ExportPost {
    /// What the receiver answered.
    struct Answer {
        var code: Int
        /// Its `Retry-After`, in seconds.
        var retryAfter: Double?
        /// The first MiB of its body.
        var body: [UInt8]
    }

    /// POSTs `body` to `url` with `headers` (and `Authorization: Bearer token`).
    /// - Throws: whatever kept an answer from coming (no connection, a timeout).
    static func send(_ body: [UInt8], to url: String, headers: [(String, String)], token: String?) async throws -> Answer {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        request.headers.add(name: "User-Agent", value: "sextant")
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        request.body = .bytes(ByteBuffer(bytes: body))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        let answer = (try? await response.body.collect(upTo: 1 << 20)).map { Array(buffer: $0) } ?? []
        return Answer(
            code: Int(response.status.code), retryAfter: response.headers.first(name: "Retry-After").flatMap(Double.init),
            body: answer)
    }
}
