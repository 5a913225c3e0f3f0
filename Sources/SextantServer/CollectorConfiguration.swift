package import SextantIngest
package import SextantStore

/// Everything `sextant serve` can be told, with its defaults.
package struct CollectorConfiguration: Sendable {
    package struct Server: Sendable {
        /// Address every listener binds (flag `--listen`, default `127.0.0.1`).
        package var listen = "127.0.0.1"
        /// HTTP API, `/metrics` and `/federate` (flag `--http-port`, default 9876).
        package var httpPort = 9876
        /// Zipkin v2 collector (flag `--zipkin-port`, default 9411).
        package var zipkinPort = 9411
        /// gRPC receivers: Envoy ALS, OTLP traces and logs (flag `--grpc-port`, default 4317).
        package var grpcPort = 4317
        /// OTLP/HTTP receiver (flag `--otlp-http-port`, default 4318).
        package var otlpHTTPPort = 4318
        /// statsd receiver, UDP (flag `--statsd-port`, default 9125).
        package var statsdPort = 9125
        /// TLS, and with a client CA mTLS, on every TCP listener; nil serves plain HTTP and cleartext
        /// HTTP/2 (flags `--tls-cert-file`, `--tls-key-file`, `--tls-client-ca-file`; default off).
        /// statsd is UDP and stays plain.
        package var tls: ServerTLS?
        /// Prometheus text targets to scrape, such as an Envoy's `/stats/prometheus` (flag `--scrape`).
        package var scrapeTargets: [String] = []
        /// Seconds between scrapes of each target (flag `--scrape-interval`, default 15).
        package var scrapeIntervalSeconds: Double = 15
        /// Largest request body accepted as sent, in bytes (flag `--max-body-bytes`).
        package var maxBodyBytes = 16 << 20
        /// Largest request body after decompression, in bytes (flag `--max-decompressed-bytes`).
        package var maxDecompressedBytes = 64 << 20
        /// Resident memory past which ingest sheds, in bytes; 0 for no limit (flag `--memory-limit`,
        /// default 1 GiB). Ingest is refused from `MemoryGuard.sheddingFraction` of it.
        package var memoryLimitBytes = 1 << 30
        /// Messages and records of one Envoy ALS or metrics service stream that may wait for their
        /// commit while the stream reads on (default 8 messages, 20,000 records).
        package var streamWindow = StreamWindow()
        /// Serve the operator's page from this folder instead of the copy compiled in (flag
        /// `--page-directory`, for working on the page without rebuilding; default none).
        package var pageDirectory: String?
        /// Query mode (flag `--query-prometheus`): the graph, signals and diff are drawn from Istio's
        /// series in this Prometheus-compatible API instead of the local store.
        package var queryPrometheus: String?
        /// Sent as `Authorization: Bearer` to `queryPrometheus`.
        package var queryPrometheusToken: String?

        package init() {}
    }

    package var store: SextantDatabase.Configuration
    package var writer = IngestWriter.Configuration()
    package var retention = RetentionService.Configuration()
    package var tokens = AccessTokens()
    /// Receivers of Prometheus remote write, and how (default none).
    package var remoteWrite = RemoteWriteConfiguration()
    /// Where stored spans and log records are forwarded over OTLP.
    package var otlpExport = OTLPExportConfiguration()
    package var server = Server()
    /// Records per request, attributes, string lengths, clock skew.
    package var limits = IngestLimits()

    package init(dataDirectory: String) {
        store = .init(directory: dataDirectory)
    }
}
