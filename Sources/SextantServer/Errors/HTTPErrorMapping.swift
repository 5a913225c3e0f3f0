import Hummingbird
import Logging
import SextantModel
import SextantStore

/// The one place that turns Sextant's errors into HTTP answers (OTLP/Collector conventions:
/// malformed → 400, too large → 413, overloaded → 429 with Retry-After, memory near its limit,
/// storage full or read-only, unavailable → 503 with Retry-After).
enum HTTPErrorMapping {
    static func httpError(_ error: any Error, logger: Logger) -> HTTPError {
        switch error {
        case let e as HTTPError:
            return e
        case let e as DecodeError:
            switch e.code {
            case .malformed: return HTTPError(.badRequest, message: e.message)
            case .unsupportedContentType: return HTTPError(.unsupportedMediaType, message: e.message)
            case .payloadTooLarge, .decompressedTooLarge, .tooManyRecords:
                return HTTPError(.contentTooLarge, message: e.message)
            }
        case let e as MemoryGuard.Refusal:
            return HTTPError(.serviceUnavailable, headers: [.retryAfter: "1"], message: e.message)
        case let e as QueryError:
            return HTTPError(.badRequest, message: e.message)
        case let e as NotFound:
            return HTTPError(.notFound, message: e.message)
        case let e as UpstreamError:
            return HTTPError(.badGateway, message: e.description)
        case let e as StoreError:
            switch e.code {
            case .overloaded:
                return HTTPError(.tooManyRequests, headers: [.retryAfter: "1"], message: e.message)
            case .unavailable, .storageFull, .readOnly:
                return HTTPError(.serviceUnavailable, headers: [.retryAfter: "5"], message: e.message)
            case .failed:
                logger.error("store failure", metadata: ["error.type": "\(type(of: e.cause))", "error": "\(e)"])
                return HTTPError(.serviceUnavailable, headers: [.retryAfter: "5"], message: e.message)
            }
        default:
            logger.error("unexpected failure", metadata: ["error.type": "\(type(of: error))", "error": "\(error)"])
            return HTTPError(.internalServerError, message: "internal error")
        }
    }
}

/// What a query names is not stored (a trace).
struct NotFound: Error, Sendable {
    var message: String
}

/// A query parameter Sextant cannot use.
struct QueryError: Error, Sendable {
    var message: String

    init(_ message: String) {
        self.message = message
    }
}
