/// Envoy's default histogram bucket bounds, used by all three Istio request histograms
/// (`istio_request_duration_milliseconds` in ms, `istio_request_bytes`/`istio_response_bytes` in bytes).
package enum IstioHistogram {
    package static let bounds: [Double] = [
        0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000,
        1_800_000, 3_600_000,
    ]
}
