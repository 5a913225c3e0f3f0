import SextantIngest
import SextantModel
import Synchronization

/// Which proxies send from which IP, learned from the node ids of identified channels (ALS,
/// metrics service); lets statsd, which carries no identity, name its sender.
final class ProxyDirectory: Sendable {
    private struct Known {
        var byIP: [String: [String: (WorkloadIdentity, String)]] = [:]
        /// Every node id learned, with its identity: a stream that names a known proxy again
        /// (each ALS stream does) costs a lookup, not a parse of its node id.
        var byNodeID: [String: WorkloadIdentity] = [:]
    }

    private let known = Mutex(Known())

    func learn(nodeID: String, identity: WorkloadIdentity) {
        if known.withLock({ $0.byNodeID[nodeID] == identity }) { return }
        let node = NodeIdentity(nodeID: nodeID)
        known.withLock {
            $0.byNodeID[nodeID] = identity
            guard let node, !node.ip.isEmpty else { return }
            $0.byIP[node.ip, default: [:]][nodeID] = (identity, node.pod)
        }
    }

    /// Labels for a sender: the proxy's identity when exactly one known proxy uses the IP, else
    /// the IP as `instance`.
    func labels(forIP ip: String) -> [MetricLabelPair] {
        let proxies = known.withLock { $0.byIP[ip] ?? [:] }
        if proxies.count == 1, let (identity, pod) = proxies.values.first {
            return MetricNames.proxyLabels(identity, pod: pod)
        }
        return [MetricLabelPair("instance", ip)]
    }
}
