import Foundation
package import GRPCCore
package import Hummingbird
package import HummingbirdCore
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
    /// The HTTP API's, the Zipkin collector's and the OTLP/HTTP receiver's HTTP/1.1 servers (as
    /// `services` run them, without TLS): each answers its busiest ingest route from the channel
    /// pipeline (`IngestFastPath`).
    package let apiServer: HTTPServerBuilder
    package let zipkinServer: HTTPServerBuilder
    package let otlpServer: HTTPServerBuilder
    /// The gRPC services (also served by `services`).
    package let grpcServices: [any RegistrableRPCService]
    /// What every gRPC call passes through first (the ingest token check).
    package let grpcInterceptors: [any ServerInterceptor]
    /// What the gRPC listener's streams answer themselves (`GRPCFastPath`).
    let grpcFastPath: GRPCFastPath.Settings
    private let readiness: Readiness

    package init(configuration: CollectorConfiguration, logger: Logger) throws {
        database = try SextantDatabase(configuration: configuration.store, logger: logger)
        writer = IngestWriter(database: database, configuration: configuration.writer, logger: logger)
        let metrics = SelfMetrics()
        let readiness = Readiness()
        self.readiness = readiness
        let limits = configuration.server
        let memory = MemoryGuard(limitBytes: limits.memoryLimitBytes, logger: logger)
        let dataDirectory = (database.path as NSString).deletingLastPathComponent
        let forwarder = try configuration.otlpExport.endpoint.map { _ in
            try OTLPExporter(
                configuration: configuration.otlpExport, dataDirectory: dataDirectory, metrics: metrics, logger: logger)
        }
        let sink = IngestSink(
            writer: writer, metrics: metrics, limits: configuration.limits, memory: memory, forwarder: forwarder)
        let ingest = IngestController(sink: sink, limits: limits)
        let exposition = MetricsController(
            database: database, writer: writer, metrics: metrics, memory: memory)

        let tokens = configuration.tokens
        // Each port's routes sit in groups by the token they need: a route lands in a group and
        // takes its token. What a route throws is answered in one place (`ErrorMiddleware`).
        let api = Router()
        api.add(middleware: ErrorMiddleware(style: .json, logger: logger))
        api.get("/readyz") { _, _ -> Response in
            readiness.isReady
                ? Response(status: .ok, body: ResponseBody(byteBuffer: ByteBuffer(string: "ready\n")))
                : Response(status: .serviceUnavailable, body: ResponseBody(byteBuffer: ByteBuffer(string: "starting\n")))
        }
        api.get("/healthz") { _, _ in "ok\n" }
        // The page holds no data: its calls to the query API carry the query token.
        PageController(directory: limits.pageDirectory).addRoutes(to: api.group())
        ingest.addRoutes(to: api.group().add(middleware: BearerTokenMiddleware(tokens: tokens, scope: .ingest)))
        let apiQueries = api.group().add(middleware: BearerTokenMiddleware(tokens: tokens, scope: .query))
        let calls = limits.queryPrometheus.map { url -> any CallSource in
            PrometheusCalls(api: PrometheusAPI(baseURL: url, bearerToken: limits.queryPrometheusToken))
        }
        QueryController(database: database, calls: calls).addRoutes(to: apiQueries)
        exposition.addRoutes(to: apiQueries)
        TracesController(database: database).addRoutes(to: apiQueries)
        SeriesController(database: database).addRoutes(to: apiQueries)

        // Zipkin's port: its API answers errors of queries as plain text.
        let zipkin = Router()
        zipkin.get("/health") { _, _ in "ok\n" }
        ingest.addZipkinRoutes(
            to: zipkin.group().add(middleware: BearerTokenMiddleware(tokens: tokens, scope: .ingest))
                .add(middleware: ErrorMiddleware(style: .json, logger: logger)))
        ZipkinQueryController(database: database).addRoutes(
            to: zipkin.group().add(middleware: BearerTokenMiddleware(tokens: tokens, scope: .query))
                .add(middleware: ErrorMiddleware(style: .plainText, logger: logger)))

        let directory = ProxyDirectory()
        let otlpRouter = Router()
        otlpRouter.add(middleware: ErrorMiddleware(style: .json, logger: logger))
        OTLPHTTPController(sink: sink, limits: limits).addRoutes(
            to: otlpRouter.group().add(middleware: BearerTokenMiddleware(tokens: tokens, scope: .ingest)))

        let tls = limits.tls
        func server(_ fastRoutes: [FastIngestRoute]) -> HTTPServerBuilder {
            guard !fastRoutes.isEmpty else { return .http1() }
            return .http1(
                configuration: .init(additionalChannelHandlers: [
                    IngestFastPath(routes: fastRoutes, sink: sink, limits: limits, tokens: tokens, logger: logger)
                ]))
        }
        apiServer = server([.accessLogs])
        zipkinServer = server([.zipkinSpans])
        otlpServer = server([.otlpTraces])
        func listener(
            _ router: Router<BasicRequestContext>, port: Int, name: String, what: String, http: HTTPServerBuilder
        ) throws -> some Service {
            Application(
                router: router,
                server: try tls.map { try .tls(http, tlsConfiguration: $0.httpConfiguration) } ?? http,
                configuration: .init(address: .hostname(limits.listen, port: port), serverName: "sextant"),
                onServerRunning: { channel in
                    readiness.listening(name)
                    logger.info("\(what) listening", metadata: ["server.address": "\(channel.localAddress?.description ?? "")"])
                },
                logger: logger)
        }
        let apiApp = try listener(api, port: limits.httpPort, name: "api", what: "HTTP API", http: apiServer)
        let zipkinApp = try listener(
            zipkin, port: limits.zipkinPort, name: "zipkin", what: "Zipkin collector", http: zipkinServer)
        let otlpApp = try listener(
            otlpRouter, port: limits.otlpHTTPPort, name: "otlp-http", what: "OTLP/HTTP receiver", http: otlpServer)
        grpcServices = [
            AccessLogService(sink: sink, directory: directory, window: limits.streamWindow, logger: logger),
            OTLPTraceService(sink: sink, logger: logger),
            OTLPLogsService(sink: sink, logger: logger),
            EnvoyMetricsService(sink: sink, directory: directory, window: limits.streamWindow, logger: logger),
            OTLPMetricsService(sink: sink, logger: logger),
        ]
        grpcInterceptors = [BearerTokenInterceptor(tokens: tokens)]
        grpcFastPath = GRPCFastPath.Settings(
            sink: sink, tokens: tokens, maxMessageBytes: limits.maxBodyBytes, window: limits.streamWindow,
            directory: directory, logger: logger)
        let grpc = try GRPCListener(
            host: limits.listen, port: limits.grpcPort, maxMessageBytes: limits.maxBodyBytes, tls: tls,
            services: grpcServices, interceptors: grpcInterceptors,
            fastPath: grpcFastPath,
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
        let clock = database.clock
        let retention = RetentionService(
            database: database, configuration: configuration.retention, logger: logger,
            now: { clock.nowMicros / 1_000_000 })
        let compactor = SpanBlockCompactor(database: database, logger: logger, now: { clock.nowMicros / 1_000_000 })
        var services: [any Service] = [
            writer, memory, apiApp, zipkinApp, otlpApp, grpc, statsd, scraper, retention, compactor,
        ]
        if !configuration.remoteWrite.urls.isEmpty {
            services.append(
                try RemoteWriteExporter(
                    configuration: configuration.remoteWrite, database: database, metrics: metrics, logger: logger))
        }
        if let forwarder { services.append(forwarder) }
        self.services = services
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
