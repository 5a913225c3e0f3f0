import SextantIngest
import SextantModel
import Synchronization

/// Which proxies send from which IP, learned from the node ids of identified channels (ALS,
/// metrics service); lets statsd, which carries no identity, name its sender.
final class ProxyDirectory: Sendable {
    private let byIP = Mutex([String: [String: (WorkloadIdentity, String)]]())

    func learn(nodeID: String, identity: WorkloadIdentity) {
        guard let node = NodeIdentity(nodeID: nodeID), !node.ip.isEmpty else { return }
        byIP.withLock { $0[node.ip, default: [:]][nodeID] = (identity, node.pod) }
    }

    /// Labels for a sender: the proxy's identity when exactly one known proxy uses the IP, else
    /// the IP as `instance`.
    func labels(forIP ip: String) -> [MetricLabelPair] {
        let known = byIP.withLock { $0[ip] ?? [:] }
        if known.count == 1, let (identity, pod) = known.values.first {
            return MetricNames.proxyLabels(identity, pod: pod)
        }
        return [MetricLabelPair("instance", ip)]
    }
}
