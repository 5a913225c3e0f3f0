import Foundation
import SextantIngest
import SextantLoadgen
import SextantModel
import SextantWire

/// Every call into the decoders, in one place (their internals are being rewritten; these entry
/// points, bytes in and `IngestBatch` out, are what the server calls: IngestController,
/// OTLPHTTPController, GRPC/*.swift).
enum DecoderCalls {
    /// Decodes one request of `channel` as the server would; ALS requests are whole streams.
    /// - Parameter proxy: the access-log uploader's `?node=`, parsed as the server's HTTP layer does
    ///   before it calls the decoder (`proxy(target:)`), so that decoder timings are the decoder's.
    static func decode(_ channel: LoadChannel, parts: [[UInt8]], proxy: WorkloadIdentity?) throws -> IngestBatch {
        switch channel {
        case .zipkin:
            return try ZipkinV2Decoder().decode(json: parts[0])
        case .accesslog:
            return EnvoyAccessLogDecoder(defaultProxy: proxy).decode(lines: parts[0])
        case .otlpGRPC, .otlpHTTP:
            return try OTLPTraceDecoder().decode(protobuf: parts[0])
        case .als:
            let decoder = EnvoyALSDecoder()
            var identity: WorkloadIdentity?
            var batch = IngestBatch()
            for part in parts {
                if let sender = try decoder.streamProxy(protobuf: part) {
                    identity = sender.identity
                }
                guard let identity else { throw LoadError("ALS stream without identifier") }
                batch.append(contentsOf: try decoder.decode(protobuf: part, proxy: identity))
            }
            return batch
        }
    }

    /// The proxy named by `?node=` of an access-log upload path.
    static func proxy(target: String) -> WorkloadIdentity? {
        guard let range = target.range(of: "node=") else { return nil }
        let node = String(target[range.upperBound...]).removingPercentEncoding ?? ""
        return NodeIdentity.parsed(nodeID: node)?.workload
    }
}
