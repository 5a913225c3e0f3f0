import Hummingbird

/// Answers 401 to requests without the token of its router group (`AccessTokens`): ingest routes
/// and query routes each sit in a group with its own, so a route added to a group takes its token.
struct BearerTokenMiddleware<Context: RequestContext>: RouterMiddleware {
    let tokens: AccessTokens
    /// Which token the group's requests need.
    let scope: AccessTokens.Scope

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        let needed = scope
        guard tokens.allows(needed, authorization: request.headers[.authorization]) else {
            throw HTTPError(
                .unauthorized, headers: [.wwwAuthenticate: "Bearer realm=\"sextant\""],
                message: "this endpoint needs the \(needed == .ingest ? "ingest" : "query") bearer token")
        }
        return try await next(request, context)
    }
}
