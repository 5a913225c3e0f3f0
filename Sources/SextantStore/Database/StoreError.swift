/// Failures of the store, classified for the edges that answer senders.
package struct StoreError: Error, Sendable, CustomStringConvertible {
    package enum Code: Sendable, Hashable {
        /// The ingest queue is full: the sender should retry later.
        case overloaded
        /// The store is shutting down or cannot write.
        case unavailable
        /// The database failed.
        case failed
    }

    package var code: Code
    package var message: String
    package var cause: (any Error)?

    package init(_ code: Code, _ message: String, cause: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    package var description: String {
        cause.map { "\(message): \($0)" } ?? message
    }
}
