/// A certificate, key or CA file that TLS cannot start with.
package struct TLSSetupError: Error, Sendable, CustomStringConvertible {
    package enum Code: Sendable, Hashable {
        /// A file is missing or cannot be read.
        case unreadableFile
        /// The certificate file holds no PEM certificate.
        case invalidCertificate
        /// The key file holds no PEM private key (or an encrypted one).
        case invalidPrivateKey
        /// The private key is not the key of the leaf certificate.
        case keyMismatch
        /// The client CA file holds no PEM certificate.
        case invalidClientCA
    }

    package var code: Code
    package var message: String
    package var cause: (any Error)?

    package init(_ code: Code, _ message: String, cause: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    package var description: String { message }
}
