import Hummingbird
import NIOCore
import SextantIngest
import SextantModel

extension Request {
    /// Runs `body` on the decoded body (as `decodedBody` reads it) while the memory the request
    /// takes is reserved: twice the body as sent (its `Content-Length`, or 1 MiB when it is chunked)
    /// while it is read and decoded, then `MemoryGuard.decodedBytesPerBodyByte` times the decoded
    /// body while its records are handled.
    /// - Throws: `MemoryGuard.Refusal` when ingest sheds; `DecodeError`; whatever `body` throws.
    func withDecodedBody<T>(
        limits: CollectorConfiguration.Server, memory: MemoryGuard, defaultEncoding encoding: String? = nil,
        _ body: ([UInt8]) async throws -> T
    ) async throws -> T {
        let declared = headers[.contentLength].flatMap { Int($0) } ?? (1 << 20)
        return try await memory.reserving(2 * min(max(declared, 0), limits.maxBodyBytes)) {
            let bytes = try await decodedBody(limits: limits, defaultEncoding: encoding)
            return try await memory.reserving(MemoryGuard.decodedBytesPerBodyByte * bytes.count) {
                try await body(bytes)
            }
        }
    }

    /// The body as sent, then decoded from its `Content-Encoding`, within both size limits.
    /// - Parameter encoding: the encoding to assume when the request names none.
    func decodedBody(limits: CollectorConfiguration.Server, defaultEncoding encoding: String? = nil) async throws -> [UInt8] {
        var request = self
        let raw: ByteBuffer
        do {
            raw = try await request.collectBody(upTo: limits.maxBodyBytes)
        } catch is NIOTooManyBytesError {
            throw DecodeError(.payloadTooLarge, "body exceeds the limit of \(limits.maxBodyBytes) bytes")
        } catch let error as HTTPError where error.status == .contentTooLarge {
            throw DecodeError(.payloadTooLarge, "body exceeds the limit of \(limits.maxBodyBytes) bytes")
        } catch {
            // The connection dropped or the framing broke: not the body's size.
            throw DecodeError(.malformed, "the body could not be read: \(error)")
        }
        let decoded = try BodyDecompressor.decode(
            raw, contentEncoding: headers[.contentEncoding] ?? encoding, limit: limits.maxDecompressedBytes)
        return Array(buffer: decoded)
    }
}

/// Integer query parameters.
enum QueryParameter {
    static func integer(_ text: Substring?, name: String, default value: Int, range: ClosedRange<Int>)
        throws(QueryError) -> Int
    {
        guard let text else { return value }
        guard let n = Int(text), range.contains(n) else {
            throw QueryError("\(name) must be an integer from \(range.lowerBound) to \(range.upperBound)")
        }
        return n
    }
}
