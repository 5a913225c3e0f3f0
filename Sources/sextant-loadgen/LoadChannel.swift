import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import SextantLoadgen
import SextantWire
import SwiftProtobuf
import Synchronization

/// The ports of the Sextant under load.
struct TargetPorts: Sendable {
    var http: Int
    var zipkin: Int
    var grpc: Int
    var otlpHTTP: Int
}

/// An ingest channel and its pre-built bodies.
enum LoadChannel: String, CaseIterable, Sendable {
    case zipkin
    case accesslog
    case otlpGRPC = "otlp-grpc"
    case otlpHTTP = "otlp-http"
    case als

    var label: String {
        switch self {
        case .zipkin: "Zipkin JSON spans (POST /api/v2/spans)"
        case .accesslog: "Istio JSON access-log lines (POST /api/v1/accesslogs)"
        case .otlpGRPC: "OTLP gRPC spans (TraceService/Export)"
        case .otlpHTTP: "OTLP/HTTP protobuf spans (POST /v1/traces)"
        case .als: "Envoy ALS entries (gRPC stream)"
        }
    }
}

/// One request's worth of bodies: one body, or the messages of one ALS stream.
struct LoadRequest: Sendable {
    var parts: [BodyTemplate]
    var records: Int { parts.reduce(0) { $0 + $1.records } }
}

/// Rounds of pre-built requests of a channel; request `i` of a run is request `i % perRound` of
/// round `(i / perRound) % rounds.count`, with a nonce unique to `i / perRound`.
struct ChannelPayloads: Sendable {
    var channel: LoadChannel
    var rounds: [[LoadRequest]]

    var perRound: Int { rounds[0].count }
    var recordsPerRequest: [Int] { rounds[0].map(\.records) }

    init(channel: LoadChannel, driverRequestsPerRound: Int, batch: Int, variants: Int = 4, seed: UInt64) throws {
        self.channel = channel
        var rounds: [[LoadRequest]] = []
        for variant in 0..<variants {
            let round = BookinfoRound(driverRequests: driverRequestsPerRound, seed: seed &+ UInt64(variant) &* 7919)
            let requests: [LoadRequest]
            switch channel {
            case .zipkin: requests = try JSONPayloads.zipkin(round, maxPerBody: batch).map { LoadRequest(parts: [$0]) }
            case .accesslog: requests = try JSONPayloads.accessLog(round, maxPerBody: batch).map { LoadRequest(parts: [$0]) }
            case .otlpGRPC, .otlpHTTP:
                requests = try ProtobufPayloads.otlp(round, maxPerBody: batch, path: "/v1/traces").map {
                    LoadRequest(parts: [$0])
                }
            case .als: requests = try ProtobufPayloads.als(round, maxPerMessage: batch).map { LoadRequest(parts: $0) }
            }
            rounds.append(requests)
        }
        // The schedule assumes every round has the same shape: keep the first's.
        let shape = rounds[0].map(\.records)
        self.rounds = rounds.filter { $0.map(\.records) == shape }
    }

    func request(_ index: Int) -> (LoadRequest, nonce: UInt32) {
        let (round, position) = index.quotientAndRemainder(dividingBy: perRound)
        return (rounds[round % rounds.count][position], UInt32(truncatingIfNeeded: round) &+ ChannelPayloads.nonceBase)
    }

    /// The first index of `requests` requests that no other phase of this run (pre-fill, a step,
    /// the store benchmark) sends: each phase claims its own rounds, so no record is a resend of
    /// one already stored, which the store would only count as a duplicate.
    func reserve(requests: Int) -> Int {
        let claimed = (requests + perRound - 1) / perRound
        return ChannelPayloads.nextRound.add(claimed, ordering: .relaxed).oldValue * perRound
    }

    /// Different in every run of the generator, so a rerun on the same database sends new ids.
    static let nonceBase = UInt32.random(in: 0...UInt32.max)
    private static let nextRound = Atomic<Int>(0)
}

/// What one request came to.
enum Outcome: Sendable {
    case acked(Int)
    case refused(String)
    case failed(String, acked: Int)
}

/// A connection of some channel that sends requests one at a time.
enum LoadConnection {
    /// Opens a connection for `channel` and runs `body` with a function that sends one request.
    static func with(
        channel: LoadChannel, ports: TargetPorts, group: MultiThreadedEventLoopGroup,
        _ body: @Sendable (_ send: (LoadRequest, UInt32, Int64) async -> Outcome) async throws -> Void
    ) async throws {
        switch channel {
        case .zipkin, .accesslog, .otlpHTTP:
            let port = channel == .zipkin ? ports.zipkin : channel == .accesslog ? ports.http : ports.otlpHTTP
            try await HTTPLoadConnection.with(port: port, group: group) { session in
                var broken: String?
                try await body { request, nonce, base in
                    if let broken { return .failed(broken, acked: 0) }
                    let part = request.parts[0]
                    let bytes = part.render(nonce: nonce, baseMicros: base)
                    do {
                        let type = channel == .otlpHTTP ? "application/x-protobuf" : channel == .zipkin ? "application/json" : "application/x-ndjson"
                        let answer = try await session.send(method: .POST, path: part.target, contentType: type, body: bytes)
                        return classify(channel: channel, answer: answer, records: part.records)
                    } catch {
                        broken = "connection: \(error)"
                        return .failed(broken!, acked: 0)
                    }
                }
            }
        case .otlpGRPC, .als:
            try await GRPCFrameConnection.with(port: ports.grpc, group: group) { connection in
                var broken: String?
                try await body { request, nonce, base in
                    if let broken { return .failed(broken, acked: 0) }
                    let method = channel == .otlpGRPC ? GRPCMethod.otlpExport : GRPCMethod.alsStream
                    do {
                        let answer = try await connection.call(
                            method, messages: request.parts.map { $0.render(nonce: nonce, baseMicros: base) })
                        return classify(channel: channel, answer: answer, records: request.records)
                    } catch {
                        broken = "connection: \(error)"
                        return .failed(broken!, acked: 0)
                    }
                }
            }
        }
    }

    static func classify(channel: LoadChannel, answer: HTTPLoadConnection.Answer, records: Int) -> Outcome {
        switch answer.status {
        case 200..<300:
            switch channel {
            case .accesslog:
                let accepted = number(after: "\"accepted\":", in: answer.body) ?? 0
                let rejected = number(after: "\"rejected\":", in: answer.body) ?? 0
                return rejected > 0 ? .failed("\(rejected) lines rejected", acked: accepted) : .acked(accepted)
            case .otlpHTTP:
                let response = try? Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceResponse(
                    serializedBytes: Array(buffer: answer.body))
                let rejected = Int(response?.partialSuccess.rejectedSpans ?? 0)
                return rejected > 0
                    ? .failed("\(rejected) spans rejected: \(response?.partialSuccess.errorMessage ?? "")", acked: records - rejected)
                    : .acked(records)
            default:
                return .acked(records)
            }
        case 429, 503:
            return .refused("HTTP \(answer.status)")
        default:
            return .failed("HTTP \(answer.status): \(String(buffer: answer.body).prefix(160))", acked: 0)
        }
    }

    /// The decimal number right after `key` in `body`, found in its bytes (a search through
    /// Foundation's `String.range(of:)` cost the generator 3 % of its time at 80,000 lines/s).
    static func number(after key: String, in body: ByteBuffer) -> Int? {
        let needle = Array(key.utf8)
        let bytes = body.readableBytesView
        guard let start = bytes.firstRange(of: needle)?.upperBound else { return nil }
        let digits = bytes[start...].prefix { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
        guard !digits.isEmpty, digits.count <= 18 else { return nil }
        return digits.reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) }
    }

    /// A gRPC answer as an outcome: RESOURCE_EXHAUSTED and UNAVAILABLE (or HTTP 429 and 503) are
    /// refusals, as a proxy's client takes them; an OTLP partial success counts its rejected spans.
    static func classify(channel: LoadChannel, answer: GRPCFrameConnection.Answer, records: Int) -> Outcome {
        switch answer.status {
        case 0:
            guard channel == .otlpGRPC else { return .acked(records) }
            let response = try? Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceResponse(
                serializedBytes: answer.firstMessage)
            let rejected = Int(response?.partialSuccess.rejectedSpans ?? 0)
            return rejected > 0 ? .failed("\(rejected) spans rejected", acked: records - rejected) : .acked(records)
        case 8, 14, 1429, 1503:
            return .refused(answer.status > 1000 ? "HTTP \(answer.status - 1000)" : "gRPC status \(answer.status)")
        default:
            let code = answer.status > 1000 ? "HTTP \(answer.status - 1000)" : "gRPC status \(answer.status)"
            return .failed("\(code): \(answer.message.prefix(160))", acked: 0)
        }
    }
}
