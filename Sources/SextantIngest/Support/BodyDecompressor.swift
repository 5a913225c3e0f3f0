internal import CompressNIO
package import NIOCore
package import SextantModel

/// Undoes a request's `Content-Encoding`, never producing more than a limit.
package enum BodyDecompressor {
    /// Returns the decoded body.
    /// - Throws: `DecodeError` `.unsupportedContentType` for an unknown encoding, `.payloadTooLarge`
    ///   when the decoded body would pass `limit`, `.malformed` for corrupt data.
    package static func decode(_ body: ByteBuffer, contentEncoding: String?, limit: Int) throws(DecodeError)
        -> ByteBuffer
    {
        let encoding = (contentEncoding ?? "identity").trimmingASCIISpaces().lowercased()
        switch encoding {
        case "", "identity":
            guard body.readableBytes <= limit else {
                throw DecodeError(.payloadTooLarge, "body of \(body.readableBytes) bytes exceeds the limit of \(limit)")
            }
            return body
        case "gzip", "x-gzip", "deflate":
            var input = body
            do {
                return try input.decompress(with: encoding == "deflate" ? .zlib() : .gzip(), maxSize: limit)
            } catch let error as CompressNIOError where error == .bufferOverflow {
                throw DecodeError(.payloadTooLarge, "decompressed body exceeds the limit of \(limit) bytes")
            } catch {
                throw DecodeError(.malformed, "body is not valid \(encoding) data")
            }
        default:
            throw DecodeError(.unsupportedContentType, "unsupported content-encoding '\(encoding)'")
        }
    }
}

extension String {
    func trimmingASCIISpaces() -> String {
        var s = Substring(self)
        while s.first == " " || s.first == "\t" { s = s.dropFirst() }
        while s.last == " " || s.last == "\t" { s = s.dropLast() }
        return String(s)
    }
}
