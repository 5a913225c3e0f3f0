package import SextantModel

/// Zipkin's dependency links (`/api/v2/dependencies`) from stored calls, counted as the service
/// graph counts them.
///
/// Zipkin derives links from span trees (`DependencyLinker`); Sextant already pairs each call's
/// client and server reports, so links come from the calls instead, with the graph's rule that
/// every call counts once (`CallAggregate.isCounted`). Names follow Envoy's Zipkin spans, whose
/// `localEndpoint.serviceName` is `<canonical service>.<namespace>` (`productpage.default`):
/// - `parent` is the calling workload's name; calls from an unknown caller (no sidecar, such as
///   traffic entering the mesh) give no link, as Zipkin skips a root server span whose caller it
///   cannot name;
/// - `child` is the answering workload's name or, when no sidecar answered, the called service's
///   `<name>.<namespace>` (its host when the namespace is unknown), as Zipkin links a client span
///   to an uninstrumented callee by its remote service name;
/// - `errorCount` counts calls the graph counts as errors (`CallOutcome.isError`).
package struct DependencyLinks: Sendable {
    package struct Link: Sendable, Hashable {
        package var parent: String
        package var child: String
        package var callCount: Int
        package var errorCount: Int

        package init(parent: String, child: String, callCount: Int, errorCount: Int) {
            self.parent = parent
            self.child = child
            self.callCount = callCount
            self.errorCount = errorCount
        }
    }

    /// Sorted by parent, then child.
    package var links: [Link]

    package init(aggregates: [CallAggregate]) {
        struct Key: Hashable {
            var parent: String
            var child: String
        }
        var totals: [Key: (calls: Int, errors: Int)] = [:]
        for a in aggregates where a.isCounted && a.requestProtocol != .tcp {
            let source = a.sourceWorkload
            guard source.isKnown else { continue }
            let child: String
            if let destination = a.destinationWorkload, destination.isKnown {
                child = Self.name(destination)
            } else if a.service.namespace != "unknown", !a.service.namespace.isEmpty {
                child = "\(a.service.name).\(a.service.namespace)"
            } else {
                child = a.service.host
            }
            let key = Key(parent: Self.name(source), child: child)
            var t = totals[key, default: (0, 0)]
            t.calls += a.count
            if CallOutcome.isError(responseCode: a.responseCode, grpcStatus: a.grpcStatus, requestProtocol: a.requestProtocol) {
                t.errors += a.count
            }
            totals[key] = t
        }
        links = totals.map { Link(parent: $0.key.parent, child: $0.key.child, callCount: $0.value.calls, errorCount: $0.value.errors) }
            .sorted { ($0.parent, $0.child) < ($1.parent, $1.child) }
    }

    /// A workload's Zipkin service name, as Envoy's spans write it: `<canonical service>.<namespace>`.
    package static func name(_ w: WorkloadIdentity) -> String {
        "\(w.canonicalService).\(w.namespace)"
    }
}
