import ArgumentParser
import Foundation
import Logging
import SextantServer
import SextantStore
import ServiceLifecycle

/// `sextant serve`: run the collector.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the collector: receive telemetry, store it, serve the API.",
        discussion: """
            Listeners: the HTTP API (graph, signals, logs, access-log upload, /metrics, /federate, /readyz) \
            on --http-port, the Zipkin v2 collector on --zipkin-port, the gRPC receivers (Envoy ALS, OTLP \
            traces, logs and metrics, Envoy metrics service) on --grpc-port, OTLP/HTTP on --otlp-http-port \
            and statsd (UDP) on --statsd-port; Prometheus remote write is POST /api/v1/write on the HTTP \
            port. SIGTERM or SIGINT stops accepting, commits what is queued and exits.

            TLS: --tls-cert-file and --tls-key-file (PEM) turn on TLS on every TCP listener (HTTP API, \
            Zipkin, OTLP/HTTP, gRPC); --tls-client-ca-file also requires a client certificate signed by \
            that CA (mTLS). statsd is UDP and cannot use TLS: it stays plain, so keep its port on a trusted \
            network. The files are read once at start; a new certificate takes a restart. TLS and the \
            bearer tokens work together.
            """
    )

    /// Every default is the configuration's own: the flags only name them.
    private static let defaults = CollectorConfiguration(dataDirectory: "")

    @OptionGroup var store: StoreOptions

    @Option(help: ArgumentHelp("Address every listener binds.", valueName: "address"))
    var listen = Self.defaults.server.listen

    @Option(help: ArgumentHelp("Port of the HTTP API, /metrics and /federate.", valueName: "port"))
    var httpPort = Self.defaults.server.httpPort

    @Option(help: ArgumentHelp("Port of the Zipkin v2 collector (POST /api/v2/spans).", valueName: "port"))
    var zipkinPort = Self.defaults.server.zipkinPort

    @Option(
        help: ArgumentHelp(
            "Port of the gRPC receivers: Envoy access log service, OTLP traces and logs.", valueName: "port"))
    var grpcPort = Self.defaults.server.grpcPort

    @Option(help: ArgumentHelp("Port of the OTLP/HTTP receiver (POST /v1/traces, /v1/logs).", valueName: "port"))
    var otlpHttpPort = Self.defaults.server.otlpHTTPPort

    @Option(
        help: ArgumentHelp("UDP port of the statsd receiver (Envoy's statsd sink); plain UDP, never TLS.", valueName: "port"))
    var statsdPort = Self.defaults.server.statsdPort

    @Option(
        help: ArgumentHelp(
            "Series one ingested metric name may have; points of further series are dropped and counted.",
            valueName: "n"))
    var maxSeriesPerMetric = Self.defaults.store.maxSeriesPerMetric

    @Option(
        name: .customLong("scrape"),
        help: ArgumentHelp(
            "A Prometheus text endpoint to scrape, such as an Envoy admin's http://10.0.0.7:15000/stats/prometheus (repeatable).",
            valueName: "url"))
    var scrapeTargets: [String] = []

    @Option(help: ArgumentHelp("Seconds between scrapes of each --scrape target.", valueName: "seconds"))
    var scrapeInterval = Self.defaults.server.scrapeIntervalSeconds

    @Option(
        help: ArgumentHelp(
            "Serve the page at / from this folder (index.html, sextant.css, sextant.js) instead of the copy "
                + "built in, read on every request: for working on the page.",
            valueName: "path", visibility: .hidden))
    var pageDirectory: String?

    @Option(
        help: ArgumentHelp(
            "Query mode: draw the graph, signals, diff and page from Istio's series in this Prometheus-compatible API "
                + "(Prometheus, VictoriaMetrics, Thanos, Mimir), e.g. http://127.0.0.1:9090, as Kiali does.",
            valueName: "url"))
    var queryPrometheus: String?

    @Option(help: ArgumentHelp("File holding a bearer token for --query-prometheus.", valueName: "path"))
    var queryPrometheusTokenFile: String?

    @Option(
        name: .customLong("remote-write-url"),
        help: ArgumentHelp(
            "A Prometheus remote-write receiver (Prometheus, VictoriaMetrics, Mimir...) to send Istio's series and the "
                + "ingested ones to, e.g. http://127.0.0.1:8428/api/v1/write (repeatable).",
            valueName: "url"))
    var remoteWriteURLs: [String] = []

    @Option(help: ArgumentHelp("File holding a bearer token for the remote-write receivers.", valueName: "path"))
    var remoteWriteTokenFile: String?

    @Option(
        name: .customLong("external-label"),
        help: ArgumentHelp(
            "A label added to every remote-written series that lacks it, such as cluster=east (repeatable).",
            valueName: "name=value"))
    var externalLabels: [String] = []

    @Option(help: ArgumentHelp("How often the series are remote-written (e.g. 15s).", valueName: "duration"))
    var remoteWriteInterval = DurationText.text(seconds: Int64(RemoteWriteConfiguration().intervalSeconds))

    @Option(
        help: ArgumentHelp(
            "Bytes of requests each remote-write receiver's queue keeps on disk while the receiver is away; "
                + "past it the oldest are dropped.",
            valueName: "size"))
    var remoteWriteQueueBytes = Self.byteText(RemoteWriteConfiguration().queueBytes)

    @Option(
        help: ArgumentHelp(
            "An OTLP endpoint (Tempo, Jaeger, an OpenTelemetry Collector, another Sextant) to forward every stored span "
                + "and log record to, e.g. http://127.0.0.1:4318 (paths /v1/traces and /v1/logs are added).",
            valueName: "url"))
    var otlpExportEndpoint: String?

    @Option(help: ArgumentHelp("How to reach --otlp-export-endpoint: http (OTLP/HTTP protobuf) or grpc.", valueName: "http|grpc"))
    var otlpExportProtocol = OTLPExportConfiguration.WireProtocol.http.rawValue

    @Option(help: ArgumentHelp("File holding a bearer token for --otlp-export-endpoint.", valueName: "path"))
    var otlpExportTokenFile: String?

    @Option(
        help: ArgumentHelp(
            "Bytes of requests each OTLP export queue (spans, logs) keeps on disk while the endpoint is away; "
                + "past it the oldest are dropped.",
            valueName: "size"))
    var otlpExportQueueBytes = Self.byteText(OTLPExportConfiguration().queueBytes)

    @Option(
        help: ArgumentHelp(
            "File holding the bearer token senders must present (HTTP Authorization, gRPC authorization metadata).",
            valueName: "path"))
    var ingestTokenFile: String?

    @Option(
        help: ArgumentHelp(
            "File holding the bearer token readers must present (API, /metrics, /federate, Zipkin queries).",
            valueName: "path"))
    var queryTokenFile: String?

    @Option(
        help: ArgumentHelp(
            "PEM certificate chain (leaf first) for TLS on every TCP listener; needs --tls-key-file. "
                + "statsd (UDP) stays plain.",
            valueName: "path"))
    var tlsCertFile: String?

    @Option(help: ArgumentHelp("PEM private key of the --tls-cert-file certificate (unencrypted).", valueName: "path"))
    var tlsKeyFile: String?

    @Option(
        help: ArgumentHelp(
            "PEM CA certificate(s); every TCP client, /readyz probes too, must then present a certificate "
                + "signed by one (mTLS).",
            valueName: "path"))
    var tlsClientCaFile: String?

    @Option(help: ArgumentHelp("How long raw calls, spans, logs and metric samples are kept (e.g. 24h).", valueName: "duration"))
    var retentionRaw = DurationText.text(seconds: Self.defaults.retention.rawSeconds)

    @Option(help: ArgumentHelp("How long minute rollups are kept (e.g. 7d).", valueName: "duration"))
    var retentionMinute = DurationText.text(seconds: Self.defaults.retention.minuteSeconds)

    @Option(help: ArgumentHelp("How long hourly rollups are kept (e.g. 90d).", valueName: "duration"))
    var retentionHour = DurationText.text(seconds: Self.defaults.retention.hourSeconds)

    @Option(help: ArgumentHelp("How often retention deletes what is past its horizon (e.g. 1m).", valueName: "duration"))
    var retentionInterval = DurationText.text(seconds: Self.defaults.retention.interval.components.seconds)

    @Option(help: ArgumentHelp("Largest request body accepted, in bytes.", valueName: "bytes"))
    var maxBodyBytes = Self.defaults.server.maxBodyBytes

    @Option(help: ArgumentHelp("Largest request body after decompression, in bytes.", valueName: "bytes"))
    var maxDecompressedBytes = Self.defaults.server.maxDecompressedBytes

    @Option(
        help: ArgumentHelp(
            "Seconds after a call is stored before Istio's counters on /metrics count it (with an unknown peer if the other proxy's report has not come).",
            valueName: "seconds"))
    var pairingGrace = Self.defaults.store.countingGraceSeconds

    @Option(
        help: ArgumentHelp(
            "Least time from one ingest commit's start to the next one's while spans or gRPC stream records keep coming (e.g. 4ms, 0 for none): longer commits fewer, larger transactions, shorter answers senders sooner. Calls from HTTP/1.1 senders, and batches that every open sender waits on, are committed at once.",
            valueName: "duration"))
    var commitInterval = "\(Int(Self.defaults.writer.commitInterval / .milliseconds(1)))ms"

    @Option(
        help: ArgumentHelp(
            "Spans, log entries or metric points one request (or stream message) may hold; larger requests get 413.",
            valueName: "n"))
    var maxRecordsPerRequest = Self.defaults.limits.maxRecordsPerRequest

    @Option(
        help: ArgumentHelp(
            "Attributes a span or log record keeps (excess dropped and counted); metric points with more labels are rejected.",
            valueName: "n"))
    var maxAttributesPerRecord = Self.defaults.limits.maxAttributesPerRecord

    @Option(
        help: ArgumentHelp(
            "Bytes an attribute value, span name or log body keeps (longer ones truncated and counted); metric points with longer labels are rejected.",
            valueName: "bytes"))
    var maxStringBytes = Self.defaults.limits.maxStringBytes

    @Option(
        help: ArgumentHelp(
            "How far in the future a record's time may be (e.g. 10m); later records are rejected.", valueName: "duration"))
    var maxClockSkew = DurationText.text(seconds: Self.defaults.limits.maxFutureMicros / 1_000_000)

    @Option(
        help: ArgumentHelp(
            "Resident memory past which ingest is shed with 503 / UNAVAILABLE (from 80% of it), e.g. 1G or 512M; 0 for none.",
            valueName: "size"))
    var memoryLimit = Self.byteText(Self.defaults.server.memoryLimitBytes)

    @Option(
        help: ArgumentHelp(
            "Largest size of the database file, e.g. 20G; once reached, ingest answers 503 / UNAVAILABLE until retention frees space. No cap by default.",
            valueName: "size"))
    var maxDbSize: String?

    func validate() throws {
        for (name, port) in [
            ("--http-port", httpPort), ("--zipkin-port", zipkinPort), ("--grpc-port", grpcPort),
            ("--otlp-http-port", otlpHttpPort), ("--statsd-port", statsdPort),
        ] where !(0...65535).contains(port) {
            throw ValidationError("\(name) must be between 0 and 65535")
        }
        let tcpPorts = [httpPort, zipkinPort, grpcPort, otlpHttpPort].filter { $0 != 0 }
        guard Set(tcpPorts).count == tcpPorts.count else {
            throw ValidationError("--http-port, --zipkin-port, --grpc-port and --otlp-http-port must differ")
        }
        guard maxBodyBytes > 0, maxDecompressedBytes >= maxBodyBytes else {
            throw ValidationError("--max-decompressed-bytes must be at least --max-body-bytes, both positive")
        }
        guard let interval = DurationText.seconds(commitInterval), interval >= 0, interval <= 1 else {
            throw ValidationError("--commit-interval must be a duration from 0 to 1s, e.g. 4ms")
        }
        guard pairingGrace >= 0 else { throw ValidationError("--pairing-grace must not be negative") }
        guard maxSeriesPerMetric > 0 else { throw ValidationError("--max-series-per-metric must be positive") }
        guard maxRecordsPerRequest > 0, maxAttributesPerRecord > 0, maxStringBytes > 0 else {
            throw ValidationError("--max-records-per-request, --max-attributes-per-record and --max-string-bytes must be positive")
        }
        guard Self.seconds(maxClockSkew) != nil else {
            throw ValidationError("--max-clock-skew '\(maxClockSkew)' must be a duration such as 10m")
        }
        guard let memory = Self.bytes(memoryLimit), memory == 0 || memory >= 32 << 20 else {
            throw ValidationError("--memory-limit '\(memoryLimit)' must be 0 (none) or a size of at least 32M, such as 1G")
        }
        if let maxDbSize {
            guard let size = Self.bytes(maxDbSize), size >= 1 << 20 else {
                throw ValidationError("--max-db-size '\(maxDbSize)' must be a size of at least 1M, such as 20G")
            }
        }
        for (flag, text) in [("--retention-raw", retentionRaw), ("--retention-minute", retentionMinute), ("--retention-hour", retentionHour)] {
            guard let seconds = Self.seconds(text), seconds >= 60 else {
                throw ValidationError("\(flag) '\(text)' must be a duration of at least 1m, such as 24h or 7d")
            }
        }
        guard Self.seconds(retentionInterval) != nil else {
            throw ValidationError("--retention-interval '\(retentionInterval)' must be a duration such as 1m or 10s")
        }
        guard (tlsCertFile == nil) == (tlsKeyFile == nil) else {
            throw ValidationError("--tls-cert-file and --tls-key-file go together")
        }
        guard tlsClientCaFile == nil || tlsCertFile != nil else {
            throw ValidationError("--tls-client-ca-file needs --tls-cert-file and --tls-key-file")
        }
        guard scrapeInterval >= 0.1 else { throw ValidationError("--scrape-interval must be at least 0.1 seconds") }
        for url in remoteWriteURLs {
            guard let parsed = URL(string: url), parsed.scheme == "http" || parsed.scheme == "https", parsed.host != nil else {
                throw ValidationError("--remote-write-url '\(url)' is not an http(s) URL")
            }
        }
        for label in externalLabels {
            guard Self.externalLabel(label) != nil else {
                throw ValidationError("--external-label '\(label)' is not name=value with a Prometheus label name")
            }
        }
        guard let interval = DurationText.seconds(remoteWriteInterval), interval >= 1 else {
            throw ValidationError("--remote-write-interval '\(remoteWriteInterval)' must be a duration of at least 1s")
        }
        guard let queue = Self.bytes(remoteWriteQueueBytes), queue >= 1 << 20 else {
            throw ValidationError("--remote-write-queue-bytes '\(remoteWriteQueueBytes)' must be a size of at least 1M")
        }
        if let endpoint = otlpExportEndpoint {
            guard let parsed = URL(string: endpoint), parsed.scheme == "http" || parsed.scheme == "https",
                parsed.host != nil
            else {
                throw ValidationError("--otlp-export-endpoint '\(endpoint)' is not an http(s) URL")
            }
        }
        if let url = queryPrometheus {
            guard let parsed = URL(string: url), parsed.scheme == "http" || parsed.scheme == "https", parsed.host != nil
            else {
                throw ValidationError("--query-prometheus '\(url)' is not an http(s) URL")
            }
        }
        guard OTLPExportConfiguration.WireProtocol(rawValue: otlpExportProtocol) != nil else {
            throw ValidationError("--otlp-export-protocol '\(otlpExportProtocol)' must be http or grpc")
        }
        guard let otlpQueue = Self.bytes(otlpExportQueueBytes), otlpQueue >= 1 << 20 else {
            throw ValidationError("--otlp-export-queue-bytes '\(otlpExportQueueBytes)' must be a size of at least 1M")
        }
        for target in scrapeTargets {
            guard let url = URL(string: target), url.scheme == "http" || url.scheme == "https", url.host != nil else {
                throw ValidationError("--scrape '\(target)' is not an http(s) URL")
            }
        }
    }

    func run() async throws {
        // Two arenas serve the pool, NIO and writer threads with less memory held free
        // (docs/ingest-history.md, "Memory").
        Malloc.limitArenas(to: 2)
        let logger = store.makeLogger()
        var configuration = CollectorConfiguration(dataDirectory: store.dataDirectory)
        configuration.store.synchronousFull = store.sync == .full
        configuration.server.listen = listen
        configuration.server.httpPort = httpPort
        configuration.server.zipkinPort = zipkinPort
        configuration.server.grpcPort = grpcPort
        configuration.server.otlpHTTPPort = otlpHttpPort
        configuration.server.statsdPort = statsdPort
        configuration.store.maxSeriesPerMetric = maxSeriesPerMetric
        configuration.retention.rawSeconds = Self.seconds(retentionRaw)!
        configuration.retention.minuteSeconds = Self.seconds(retentionMinute)!
        configuration.retention.hourSeconds = Self.seconds(retentionHour)!
        configuration.retention.interval = .seconds(Self.seconds(retentionInterval)!)
        configuration.tokens = AccessTokens(ingest: try Self.token(ingestTokenFile), query: try Self.token(queryTokenFile))
        configuration.server.tls = try tls()
        configuration.server.scrapeTargets = scrapeTargets
        configuration.server.scrapeIntervalSeconds = scrapeInterval
        configuration.server.pageDirectory = pageDirectory
        configuration.server.queryPrometheus = queryPrometheus
        configuration.server.queryPrometheusToken = try Self.token(queryPrometheusTokenFile)
        configuration.remoteWrite.urls = remoteWriteURLs
        configuration.remoteWrite.bearerToken = try Self.token(remoteWriteTokenFile)
        configuration.remoteWrite.externalLabels = externalLabels.compactMap(Self.externalLabel)
        configuration.remoteWrite.intervalSeconds = DurationText.seconds(remoteWriteInterval)!
        configuration.remoteWrite.queueBytes = Int(Self.bytes(remoteWriteQueueBytes)!)
        configuration.otlpExport.endpoint = otlpExportEndpoint
        configuration.otlpExport.wireProtocol = OTLPExportConfiguration.WireProtocol(rawValue: otlpExportProtocol)!
        configuration.otlpExport.bearerToken = try Self.token(otlpExportTokenFile)
        configuration.otlpExport.queueBytes = Int(Self.bytes(otlpExportQueueBytes)!)
        configuration.server.maxBodyBytes = maxBodyBytes
        configuration.server.maxDecompressedBytes = maxDecompressedBytes
        configuration.store.countingGraceSeconds = pairingGrace
        configuration.writer.commitInterval = .microseconds(Int64((DurationText.seconds(commitInterval)! * 1_000_000).rounded()))
        configuration.server.memoryLimitBytes = Int(Self.bytes(memoryLimit)!)
        configuration.store.maxDatabaseBytes = maxDbSize.flatMap(Self.bytes)
        configuration.limits.maxRecordsPerRequest = maxRecordsPerRequest
        configuration.limits.maxAttributesPerRecord = maxAttributesPerRecord
        configuration.limits.maxStringBytes = maxStringBytes
        configuration.limits.maxFutureMicros = Self.seconds(maxClockSkew)! * 1_000_000
        let collector: Collector
        do {
            collector = try Collector(configuration: configuration, logger: logger)
        } catch {
            logger.critical("cannot start", metadata: ["error": "\(error)"])
            throw ExitCode(2)
        }
        let tlsMode = configuration.server.tls.map { $0.requiresClientCertificate ? "mtls" : "tls" } ?? "off"
        logger.info(
            "sextant starting",
            metadata: [
                "store.path": "\(collector.database.path)", "server.listen": "\(listen)", "server.tls": "\(tlsMode)",
            ])
        let group = ServiceGroup(
            configuration: .init(
                services: collector.services.map { .init(service: $0) },
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        try await group.run()
    }

    /// The token in a file (surrounding white space ignored); nil without a file.
    static func token(_ path: String?) throws -> String? {
        guard let path else { return nil }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ValidationError("cannot read the token file \(path)")
        }
        let token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !token.isEmpty else { throw ValidationError("the token file \(path) is empty") }
        return token
    }

    /// `1048576`, `512K`, `512M`, `2G` (powers of 1024; `KiB`, `MB` and such read the same) in bytes.
    /// A size as the flags write it: `1G`, `512M`, `64K` or bytes.
    /// `name=value` with a label name Prometheus takes.
    static func externalLabel(_ text: String) -> (name: String, value: String)? {
        guard let equals = text.firstIndex(of: "=") else { return nil }
        let name = String(text[..<equals])
        guard let first = name.first, first.isLetter || first == "_", !name.hasPrefix("__"),
            name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") })
        else { return nil }
        return (name, String(text[text.index(after: equals)...]))
    }

    static func byteText(_ bytes: Int) -> String {
        for (unit, shift) in [("G", 30), ("M", 20), ("K", 10)] where bytes > 0 && bytes % (1 << shift) == 0 {
            return "\(bytes >> shift)\(unit)"
        }
        return "\(bytes)"
    }

    static func bytes(_ text: String) -> Int64? {
        var digits = Substring(text.trimmingCharacters(in: .whitespaces))
        for suffix in ["iB", "B"] where digits.hasSuffix(suffix) && digits.count > suffix.count {
            digits = digits.dropLast(suffix.count)
            break
        }
        let units: [Character: Int64] = ["k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40]
        var unit: Int64 = 1
        if let last = digits.last?.lowercased().first, let u = units[last] {
            unit = u
            digits = digits.dropLast()
        }
        guard let n = Int64(digits), n >= 0, n <= Int64.max / unit else { return nil }
        return n * unit
    }

    /// The TLS credentials of the `--tls-*` files, read once; nil without them.
    func tls() throws -> ServerTLS? {
        guard let tlsCertFile, let tlsKeyFile else { return nil }
        do {
            return try ServerTLS(
                certificateFile: tlsCertFile, privateKeyFile: tlsKeyFile, clientCAFile: tlsClientCaFile)
        } catch let error as TLSSetupError {
            throw ValidationError(error.message)
        }
    }

    /// A duration flag (`90s`, `15m`, `24h`, `7d`, `1h30m`: the grammar of query windows) in whole
    /// seconds; nil when it is not one or not positive.
    static func seconds(_ text: String) -> Int64? {
        guard let seconds = DurationText.seconds(text), seconds >= 1, seconds < 1e15 else { return nil }
        return Int64(seconds.rounded())
    }
}
