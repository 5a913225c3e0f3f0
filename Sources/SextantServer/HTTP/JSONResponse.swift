import Foundation
import Hummingbird
import NIOCore

/// Every JSON answer, with one encoder configuration (keys sorted, so answers compare as text).
enum JSONResponse {
    static func make(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: try body(value)))
    }

    /// The JSON text of `value`.
    static func body(_ value: some Encodable) throws -> ByteBuffer {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return ByteBuffer(bytes: try encoder.encode(value))
    }
}
