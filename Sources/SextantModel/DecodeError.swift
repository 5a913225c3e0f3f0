/// A payload that cannot be decoded at all.
package struct DecodeError: Error, Sendable, CustomStringConvertible {
    package enum Code: Sendable, Hashable {
        case malformed
        case unsupportedContentType
        case payloadTooLarge
    }

    package var code: Code
    package var message: String

    package init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    package var description: String { message }
}
