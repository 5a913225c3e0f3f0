/// The service a call was addressed to (Istio's destination_service*, labels).
package struct ServiceRef: Sendable, Hashable {
    /// Full host, `reviews.default.svc.cluster.local`, or what the call named when no
    /// registry host is known (an authority such as `nosuchsvc:9080`).
    package var host: String
    /// Short name, `reviews`.
    package var name: String
    /// Namespace, or `unknown`.
    package var namespace: String

    package init(host: String, name: String, namespace: String) {
        self.host = host
        self.name = name
        self.namespace = namespace
    }

    /// No service could be named.
    package static let unknown = ServiceRef(host: "unknown", name: "unknown", namespace: "unknown")
}
