import ArgumentParser

/// The `sextant` command line: a telemetry and tracing collector for Istio and Envoy.
@main
struct Sextant: AsyncParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "sextant",
        abstract: "Telemetry and tracing collector for Istio and Envoy service meshes.",
        discussion: """
            Envoy sidecars and OpenTelemetry SDKs send Sextant spans (Zipkin, OTLP), access logs (files, \
            Envoy's gRPC access log service, OTLP logs) and metrics (statsd, Envoy's metrics service, \
            OTLP, Prometheus remote write, scrapes). Sextant stores them in an embedded SQLite database \
            with minute and hourly rollups and serves the service graph, golden signals, traces (its own \
            API and Zipkin's), Istio's standard metrics (/metrics) and a Prometheus federation endpoint \
            (/federate).
            """,
        version: version,
        subcommands: [
            Serve.self, Graph.self, Top.self, Signals.self, Diff.self, Traces.self, Import.self, Migrate.self, SpanIDs.self,
            CallIDs.self,
        ],
        defaultSubcommand: Serve.self
    )
}
