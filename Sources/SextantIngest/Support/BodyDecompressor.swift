internal import CSnappy
internal import CompressNIO
package import NIOCore
package import SextantModel

/// Undoes a request's `Content-Encoding`, never producing more than a limit.
package enum BodyDecompressor {
    /// Returns the decoded body.
    /// - Throws: `DecodeError` `.unsupportedContentType` for an unknown encoding, `.decompressedTooLarge`
    ///   when the decoded body would pass `limit`, `.malformed` for corrupt data.
    package static func decode(_ body: ByteBuffer, contentEncoding: String?, limit: Int) throws(DecodeError)
        -> ByteBuffer
    {
        let encoding = (contentEncoding ?? "identity").trimmingASCIISpaces().lowercased()
        switch encoding {
        case "", "identity":
            guard body.readableBytes <= limit else {
                throw DecodeError(.decompressedTooLarge, "body of \(body.readableBytes) bytes exceeds the limit of \(limit)")
            }
            return body
        case "gzip", "x-gzip", "deflate":
            var input = body
            do {
                return try input.decompress(with: encoding == "deflate" ? .zlib() : .gzip(), maxSize: limit)
            } catch let error as CompressNIOError where error == .bufferOverflow {
                throw DecodeError(.decompressedTooLarge, "decompressed body exceeds the limit of \(limit) bytes")
            } catch {
                throw DecodeError(.malformed, "body is not valid \(encoding) data")
            }
        case "snappy":
            return ByteBuffer(bytes: try snappy(Array(buffer: body), limit: limit))
        default:
            throw DecodeError(.unsupportedContentType, "unsupported content-encoding '\(encoding)'")
        }
    }
}

extension BodyDecompressor {
    /// Snappy block format (what Prometheus remote write sends), through the system libsnappy.
    package static func snappy(_ input: [UInt8], limit: Int) throws(DecodeError) -> [UInt8] {
        var length = 0
        let known = input.withUnsafeBufferPointer { buffer in
            buffer.baseAddress.map { base in
                base.withMemoryRebound(to: CChar.self, capacity: buffer.count) {
                    snappy_uncompressed_length($0, buffer.count, &length) == SNAPPY_OK
                }
            } ?? false
        }
        guard known else { throw DecodeError(.malformed, "body is not snappy block-format data") }
        guard length <= limit else {
            throw DecodeError(.decompressedTooLarge, "decompressed body of \(length) bytes exceeds the limit of \(limit) bytes")
        }
        var output = [UInt8](repeating: 0, count: length)
        var written = length
        let status = input.withUnsafeBufferPointer { inBuffer in
            output.withUnsafeMutableBufferPointer { outBuffer in
                inBuffer.baseAddress!.withMemoryRebound(to: CChar.self, capacity: inBuffer.count) { inPointer in
                    outBuffer.baseAddress.map { outBase in
                        outBase.withMemoryRebound(to: CChar.self, capacity: outBuffer.count) {
                            snappy_uncompress(inPointer, inBuffer.count, $0, &written)
                        }
                    } ?? (length == 0 ? SNAPPY_OK : SNAPPY_INVALID_INPUT)
                }
            }
        }
        guard status == SNAPPY_OK, written == length else { throw DecodeError(.malformed, "body is corrupt snappy data") }
        return output
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
