/// A payload that cannot be decoded at all.
package struct DecodeError: Error, Sendable, CustomStringConvertible {
    package enum Code: Sendable, Hashable {
        case malformed
        case unsupportedContentType
        /// The body as sent is larger than `--max-body-bytes`.
        case payloadTooLarge
        /// The body inflates past `--max-decompressed-bytes` (a gzip bomb, say).
        case decompressedTooLarge
        /// The request holds more records than `--max-records-per-request`.
        case tooManyRecords

        /// The `reason` label of `sextant_ingest_rejected_requests_total`.
        package var reason: String {
            switch self {
            case .malformed: "malformed"
            case .unsupportedContentType: "unsupported_content_type"
            case .payloadTooLarge: "body_too_large"
            case .decompressedTooLarge: "decompressed_too_large"
            case .tooManyRecords: "too_many_records"
            }
        }
    }

    package var code: Code
    package var message: String

    package init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    package var description: String { message }
}
