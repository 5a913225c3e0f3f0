import Hummingbird
import Logging

/// Turns whatever a route throws into its answer through `HTTPErrorMapping`: handlers throw
/// Sextant's errors and never map them themselves.
struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    /// How an error's message is written.
    enum Style: Sendable {
        /// Hummingbird's JSON error body (`{"error":{"message":…}}`).
        case json
        /// The message as `text/plain`, as Zipkin's API answers.
        case plainText
    }

    let style: Style
    let logger: Logger

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        do {
            return try await next(request, context)
        } catch {
            let mapped = HTTPErrorMapping.httpError(error, logger: logger)
            switch style {
            case .json:
                throw mapped
            case .plainText:
                var headers = mapped.headers
                headers[.contentType] = "text/plain; charset=utf-8"
                return Response(
                    status: mapped.status, headers: headers,
                    body: ResponseBody(byteBuffer: ByteBuffer(string: mapped.body ?? "")))
            }
        }
    }
}
