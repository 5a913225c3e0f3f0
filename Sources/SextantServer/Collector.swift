import Foundation
package import GRPCCore
package import Hummingbird
import HummingbirdTLS
package import Logging
import NIOCore
package import SextantStore
package import ServiceLifecycle
import Synchronization

/// Builds every long-running part of `sextant serve` from one configuration: the store's writer,
/// the HTTP API, Zipkin, OTLP/HTTP, gRPC and statsd listeners.
package struct Collector {
    package let database: SextantDatabase
    package let writer: IngestWriter
    package let services: [any Service]
    /// The HTTP API's routes (also served by `services`).
    package let apiRouter: Router<BasicRequestContext>
    /// The Zipkin collector's routes (also served by `services`).
    package let zipkinRouter: Router<BasicRequestContext>
    /// The OTLP/HTTP receiver's routes (also served by `services`).
    package let otlpRouter: Router<BasicRequestContext>
    /// The gRPC services (also served by `services`).
    package let grpcServices: [any RegistrableRPCService]
    /// What every gRPC call passes through first (the ingest token check).
    package let grpcInterceptors: [any ServerInterceptor]
    private let readiness: Readiness

    package init(configuration: CollectorConfiguration, logger: Logger) throws {
        database = try SextantDatabase(configuration: configuration.store, logger: logger)
        writer = IngestWriter(database: database, configuration: configuration.writer, logger: logger)
        let metrics = SelfMetrics()
        let readiness = Readiness()
        self.readiness = readiness
        let limits = configuration.server
        let memory = MemoryGuard(limitBytes: limits.memoryLimitBytes, logger: logger)
        let sink = IngestSink(writer: writer, metrics: metrics, limits: configuration.limits, memory: memory)
        let ingest = IngestController(sink: sink, limits: limits, logger: logger)
        let queries = QueryController(database: database, logger: logger)
        let exposition = MetricsController(
            database: database, writer: writer, metrics: metrics, memory: memory, logger: logger)

        let tokens = configuration.tokens
        let api = Router()
        api.add(middleware: BearerTokenMiddleware(tokens: tokens) { request in
            switch request.uri.path {
            case "/readyz", "/healthz": .open
            case "/api/v1/accesslogs", "/api/v1/write": .ingest
            default: .query
            }
        })
        api.get("/readyz") { _, _ -> Response in
            readiness.isReady
                ? Response(status: .ok, body: ResponseBody(byteBuffer: ByteBuffer(string: "ready\n")))
                : Response(status: .serviceUnavailable, body: ResponseBody(byteBuffer: ByteBuffer(string: "starting\n")))
        }
        api.get("/healthz") { _, _ in "ok\n" }
        api.post("/api/v1/accesslogs", use: ingest.accessLogs)
        api.get("/api/v1/graph", use: queries.graph)
        api.get("/api/v1/signals", use: queries.signals)
        api.get("/metrics", use: exposition.metrics)
        api.get("/federate", use: exposition.federate)

        api.get("/api/v1/logs", use: queries.logs)

        let zipkin = Router()
        zipkin.add(middleware: BearerTokenMiddleware(tokens: tokens) { request in
            request.uri.path == "/health" ? .open : (request.method == .post ? .ingest : .query)
        })
        zipkin.post("/api/v2/spans", use: ingest.zipkinSpans)
        zipkin.get("/health") { _, _ in "ok\n" }
        let zipkinQueries = ZipkinQueryController(database: database, logger: logger)
        zipkin.get("/api/v2/services", use: zipkinQueries.services)
        zipkin.get("/api/v2/spans", use: zipkinQueries.spanNames)
        zipkin.get("/api/v2/remoteServices", use: zipkinQueries.remoteServices)
        zipkin.get("/api/v2/traces", use: zipkinQueries.traces)
        zipkin.get("/api/v2/trace/:traceId", use: zipkinQueries.trace)
        zipkin.get("/api/v2/traceMany", use: zipkinQueries.traceMany)
        zipkin.get("/api/v2/dependencies", use: zipkinQueries.dependencies)
        zipkin.get("/api/v2/autocompleteKeys", use: zipkinQueries.autocompleteKeys)
        zipkin.get("/api/v2/autocompleteValues", use: zipkinQueries.autocompleteValues)
        let traces = TracesController(database: database, logger: logger)
        api.get("/api/v1/traces", use: traces.search)
        api.get("/api/v1/traces/:id", use: traces.trace)

        let directory = ProxyDirectory()
        let otlp = OTLPHTTPController(sink: sink, limits: limits, logger: logger)
        let otlpRouter = Router()
        otlpRouter.add(middleware: BearerTokenMiddleware(tokens: tokens) { _ in .ingest })
        otlpRouter.post("/v1/traces", use: otlp.traces)
        otlpRouter.post("/v1/logs", use: otlp.logs)
        otlpRouter.post("/v1/metrics", use: otlp.metrics)

        let series = SeriesController(database: database, logger: logger)
        api.post("/api/v1/write", use: ingest.remoteWrite)
        api.get("/api/v1/series", use: series.series)
        api.get("/api/v1/query_range", use: series.queryRange)

        let tls = limits.tls
        func listener(_ router: Router<BasicRequestContext>, port: Int, name: String, what: String) throws
            -> some Service
        {
            Application(
                router: router,
                server: try tls.map { try .tls(.http1(), tlsConfiguration: $0.httpConfiguration) } ?? .http1(),
                configuration: .init(address: .hostname(limits.listen, port: port), serverName: "sextant"),
                onServerRunning: { channel in
                    readiness.listening(name)
                    logger.info("\(what) listening", metadata: ["server.address": "\(channel.localAddress?.description ?? "")"])
                },
                logger: logger)
        }
        let apiApp = try listener(api, port: limits.httpPort, name: "api", what: "HTTP API")
        let zipkinApp = try listener(zipkin, port: limits.zipkinPort, name: "zipkin", what: "Zipkin collector")
        let otlpApp = try listener(otlpRouter, port: limits.otlpHTTPPort, name: "otlp-http", what: "OTLP/HTTP receiver")
        grpcServices = [
            AccessLogService(sink: sink, directory: directory, window: limits.streamWindow, logger: logger),
            OTLPTraceService(sink: sink, logger: logger),
            OTLPLogsService(sink: sink, logger: logger),
            EnvoyMetricsService(sink: sink, directory: directory, window: limits.streamWindow, logger: logger),
            OTLPMetricsService(sink: sink, logger: logger),
        ]
        grpcInterceptors = [BearerTokenInterceptor(tokens: tokens)]
        let grpc = try GRPCListener(
            host: limits.listen, port: limits.grpcPort, maxMessageBytes: limits.maxBodyBytes, tls: tls,
            services: grpcServices, interceptors: grpcInterceptors,
            onListening: { address in
                readiness.listening("grpc")
                logger.info("gRPC receivers listening", metadata: ["server.address": "\(address)"])
            })
        let statsd = StatsdListener(
            host: limits.listen, port: limits.statsdPort, sink: sink, directory: directory, metrics: metrics,
            logger: logger,
            onListening: { address in
                readiness.listening("statsd")
                logger.info("statsd receiver listening", metadata: ["server.address": "\(address)"])
            })
        let scraper = ScrapeService(
            targets: limits.scrapeTargets.compactMap(URL.init(string:)), intervalSeconds: limits.scrapeIntervalSeconds,
            sink: sink, directory: directory, metrics: metrics, logger: logger)
        let retention = RetentionService(database: database, configuration: configuration.retention, logger: logger)
        let compactor = SpanBlockCompactor(database: database, logger: logger)
        services = [writer, memory, apiApp, zipkinApp, otlpApp, grpc, statsd, scraper, retention, compactor]
        apiRouter = api
        zipkinRouter = zipkin
        self.otlpRouter = otlpRouter
    }
}

/// Which listeners are up; `/readyz` answers 200 once all of them are.
final class Readiness: Sendable {
    private static let expected: Set<String> = ["api", "zipkin", "otlp-http", "grpc", "statsd"]
    private let up = Mutex(Set<String>())

    func listening(_ name: String) {
        up.withLock { _ = $0.insert(name) }
    }

    var isReady: Bool {
        up.withLock { $0.isSuperset(of: Self.expected) }
    }
}
