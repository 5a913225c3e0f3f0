import NIOCore
import NIOPosix

/// The handler that makes a generator connection's requests, on its event loop, and the channel
/// it is in: what `HTTPLoadConnection` and `GRPCFrameConnection` share. A request starts on the
/// loop and completes a promise there, so the only async step it takes is waiting for the promise.
struct LoopClient<Handler: ChannelHandler & SendableMetatype>: Sendable {
    let channel: any Channel
    let handler: NIOLoopBound<Handler>

    /// Connects to 127.0.0.1:`port` with `configure`'s handlers in the pipeline and `configure`'s
    /// handler last, runs `body`, and closes the connection.
    static func with<T>(
        port: Int, group: MultiThreadedEventLoopGroup,
        configure: @escaping @Sendable (any Channel) throws -> Handler,
        _ body: (LoopClient) async throws -> T
    ) async throws -> T {
        let (channel, handler) = try await ClientBootstrap(group: group)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    let handler = try configure(channel)
                    try channel.pipeline.syncOperations.addHandler(handler)
                    return (channel, NIOLoopBound(handler, eventLoop: channel.eventLoop))
                }
            }
        let client = LoopClient(channel: channel, handler: handler)
        do {
            let result = try await body(client)
            try? await channel.close()
            return result
        } catch {
            try? await channel.close()
            throw error
        }
    }

    /// Runs `start` with the handler and a new promise on the connection's loop (at once when the
    /// caller is on it) and waits for the promise.
    func request<Value: Sendable>(
        _ start: @escaping @Sendable (Handler, EventLoopPromise<Value>) -> Void
    ) async throws -> Value {
        let loop = channel.eventLoop
        let promise = loop.makePromise(of: Value.self)
        let handler = self.handler
        if loop.inEventLoop {
            start(handler.value, promise)
        } else {
            loop.execute { start(handler.value, promise) }
        }
        return try await promise.futureResult.get()
    }
}

/// The one request a generator connection has open, as its handler keeps it: the promise, the
/// answer gathered so far, and why the connection can take no more, if it cannot.
struct OpenRequest<Answer: Sendable> {
    private var promise: EventLoopPromise<Answer>?
    /// The answer so far, while a request is open.
    var answer: Answer?
    private(set) var broken: String?

    var isOpen: Bool { promise != nil }

    /// Opens a request whose answer starts as `answer`; fails `promise` instead, and returns
    /// false, when one is already open or the connection is broken.
    mutating func open(_ promise: EventLoopPromise<Answer>, answer: Answer) -> Bool {
        guard self.promise == nil, broken == nil else {
            promise.fail(LoadError(broken ?? "a request is already open"))
            return false
        }
        self.promise = promise
        self.answer = answer
        return true
    }

    /// Ends the open request with its answer.
    mutating func succeed() {
        guard let promise, let answer else { return }
        (self.promise, self.answer) = (nil, nil)
        promise.succeed(answer)
    }

    /// Ends the open request with `why`.
    mutating func fail(_ why: String) {
        guard let promise else { return }
        (self.promise, self.answer) = (nil, nil)
        promise.fail(LoadError(why))
    }

    /// The connection takes no more requests (the first reason stays); the open one fails.
    mutating func breakConnection(_ why: String) {
        broken = broken ?? why
        fail(broken!)
    }
}
