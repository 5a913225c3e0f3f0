import ArgumentParser

/// The `sextant` command line: a telemetry and tracing collector for Istio and Envoy.
@main
struct Sextant: AsyncParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "sextant",
        abstract: "Telemetry and tracing collector for Istio and Envoy service meshes.",
        discussion: """
            Envoy sidecars send Sextant spans (Zipkin v2) and access logs; Sextant stores them in an \
            embedded SQLite database and serves the service graph, golden signals, Istio's standard \
            metrics (/metrics) and a Prometheus federation endpoint (/federate).
            """,
        version: version,
        subcommands: [Serve.self, Import.self, Migrate.self],
        defaultSubcommand: Serve.self
    )
}
