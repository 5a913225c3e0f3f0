import Hummingbird
import NIOCore
import SextantIngest
import SextantModel

extension Request {
    /// The body as sent, then decoded from its `Content-Encoding`, within both size limits.
    /// - Parameter encoding: the encoding to assume when the request names none.
    func decodedBody(limits: CollectorConfiguration.Server, defaultEncoding encoding: String? = nil) async throws -> [UInt8] {
        var request = self
        let raw: ByteBuffer
        do {
            raw = try await request.collectBody(upTo: limits.maxBodyBytes)
        } catch {
            throw DecodeError(.payloadTooLarge, "body exceeds the limit of \(limits.maxBodyBytes) bytes")
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
