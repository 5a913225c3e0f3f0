/// The L7 protocol of a call, as Istio's `request_protocol` label names it.
package enum RequestProtocol: Int, Sendable, Hashable, CaseIterable {
    case http = 0
    case grpc = 1
    case tcp = 2

    /// The value of Istio's `request_protocol` label.
    package var label: String {
        switch self {
        case .http: "http"
        case .grpc: "grpc"
        case .tcp: "tcp"
        }
    }

    package init?(label: String) {
        guard let match = Self.allCases.first(where: { $0.label == label }) else { return nil }
        self = match
    }
}
