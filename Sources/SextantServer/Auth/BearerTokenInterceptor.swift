import GRPCCore

/// Refuses gRPC calls (all of them send telemetry) without the ingest token: UNAUTHENTICATED.
struct BearerTokenInterceptor: ServerInterceptor {
    let tokens: AccessTokens

    func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>,
        context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        let authorization = request.metadata[stringValues: "authorization"].first(where: { _ in true })
        guard tokens.allows(.ingest, authorization: authorization) else {
            throw RPCError(code: .unauthenticated, message: "this service needs the ingest bearer token")
        }
        return try await next(request, context)
    }
}
