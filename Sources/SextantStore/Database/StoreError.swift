/// Failures of the store, classified for the edges that answer senders.
package struct StoreError: Error, Sendable, CustomStringConvertible {
    package enum Code: Sendable, Hashable {
        /// The ingest queue is full: the sender should retry later.
        case overloaded
        /// The store is shutting down or cannot write.
        case unavailable
        /// The disk is full, or the database reached `--max-db-size`: retry once space is freed.
        case storageFull
        /// The database file or its folder cannot be written.
        case readOnly
        /// The database failed.
        case failed

        /// The `reason` label of `sextant_ingest_refused_total`.
        package var reason: String {
            switch self {
            case .overloaded: "overloaded"
            case .unavailable: "unavailable"
            case .storageFull: "storage_full"
            case .readOnly: "read_only"
            case .failed: "failed"
            }
        }
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
