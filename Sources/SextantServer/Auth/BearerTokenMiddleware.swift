import Hummingbird

/// Answers 401 to requests without the token their route needs (`AccessTokens`).
struct BearerTokenMiddleware<Context: RequestContext>: RouterMiddleware {
    let tokens: AccessTokens
    /// Which token a request needs.
    let scope: @Sendable (Request) -> AccessTokens.Scope

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        let needed = scope(request)
        guard tokens.allows(needed, authorization: request.headers[.authorization]) else {
            throw HTTPError(
                .unauthorized, headers: [.wwwAuthenticate: "Bearer realm=\"sextant\""],
                message: "this endpoint needs the \(needed == .ingest ? "ingest" : "query") bearer token")
        }
        return try await next(request, context)
    }
}
