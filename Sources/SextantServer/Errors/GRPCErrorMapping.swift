import GRPCCore
import Logging
import SextantModel
import SextantStore

/// The one place that turns Sextant's errors into gRPC statuses (OTLP/Collector conventions:
/// malformed → INVALID_ARGUMENT, too large and overloaded → RESOURCE_EXHAUSTED, memory near its
/// limit, storage full or read-only, unavailable → UNAVAILABLE).
enum GRPCErrorMapping {
    static func rpcError(_ error: any Error, logger: Logger) -> RPCError {
        switch error {
        case let e as RPCError:
            return e
        case let e as DecodeError:
            switch e.code {
            case .malformed, .unsupportedContentType: return RPCError(code: .invalidArgument, message: e.message)
            // As gRPC answers a message over its size limit.
            case .payloadTooLarge, .decompressedTooLarge, .tooManyRecords:
                return RPCError(code: .resourceExhausted, message: e.message)
            }
        case let e as MemoryGuard.Refusal:
            return RPCError(code: .unavailable, message: e.message)
        case let e as StoreError:
            switch e.code {
            case .overloaded: return RPCError(code: .resourceExhausted, message: e.message)
            case .unavailable, .storageFull, .readOnly: return RPCError(code: .unavailable, message: e.message)
            case .failed:
                logger.error("store failure", metadata: ["error": "\(e)"])
                return RPCError(code: .unavailable, message: e.message)
            }
        default:
            logger.error("unexpected failure", metadata: ["error.type": "\(type(of: error))", "error": "\(error)"])
            return RPCError(code: .internalError, message: "internal error")
        }
    }
}
