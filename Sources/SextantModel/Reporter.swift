/// Which proxy reported a call, in Istio's terms.
///
/// The client sidecar's outbound listener reports as `source`; the server sidecar's inbound
/// listener reports as `destination` (Istio's `reporter` label).
package enum Reporter: Int, Sendable, Hashable, CaseIterable {
    case source = 0
    case destination = 1

    /// The value of Istio's `reporter` label.
    package var label: String {
        switch self {
        case .source: "source"
        case .destination: "destination"
        }
    }
}
