package import SextantModel

/// An Envoy cluster name in Istio's conventions: `outbound|9080|v1|reviews.default.svc.cluster.local`,
/// `inbound|9080||`, their SNI form `outbound_.9080_.v1_.reviews...`, or a special cluster.
package struct EnvoyCluster: Sendable, Hashable {
    package enum Direction: Sendable, Hashable {
        case inbound
        case outbound
        /// `BlackHoleCluster`, `PassthroughCluster` and the like: outbound, no service registry.
        case special
    }

    package var direction: Direction
    package var port: Int?
    package var subset: String
    package var host: String
    package var name: String

    private static let specialNames: Set<String> = [
        "BlackHoleCluster", "PassthroughCluster", "InboundPassthroughCluster",
        "InboundPassthroughClusterIpv4", "InboundPassthroughClusterIpv6", "AllowAnyDynamicDNSCluster",
    ]

    /// Parses a raw cluster name; nil for names that follow none of Istio's forms.
    package init?(_ raw: String) {
        name = raw
        if Self.specialNames.contains(raw) {
            direction = raw.hasPrefix("Inbound") ? .inbound : .special
            port = nil
            subset = ""
            host = raw
            service = Self.service(direction: direction, host: host)
            return
        }
        let parts: [Substring]
        if raw.hasPrefix("outbound_") || raw.hasPrefix("inbound_") {
            parts = raw.split(separator: "_.", omittingEmptySubsequences: false)
        } else {
            parts = raw.split(separator: "|", omittingEmptySubsequences: false)
        }
        guard parts.count == 4 else { return nil }
        switch parts[0] {
        case "outbound": direction = .outbound
        case "inbound", "inbound-vip": direction = .inbound
        default: return nil
        }
        port = Int(parts[1])
        subset = parts[2] == "_" ? "" : String(parts[2])
        host = String(parts[3])
        service = Self.service(direction: direction, host: host)
    }

    /// The destination service an outbound (or special) cluster names; resolved once, when parsed.
    package private(set) var service: ServiceRef?

    private static func service(direction: Direction, host: String) -> ServiceRef? {
        switch direction {
        case .inbound: return nil
        case .special: return ServiceRef(host: host, name: host, namespace: "unknown")
        case .outbound: return ServiceHost.service(host: host, defaultNamespace: nil)
        }
    }
}

/// Turns hosts and authorities into services the way Istio's DNS names them.
package enum ServiceHost {
    /// `reviews.default.svc.cluster.local` → reviews in default; `reviews` or `reviews.<ns>` (with
    /// the proxy's namespace to complete it) → `reviews.<ns>.svc.cluster.local`; anything else (an external host, an IP)
    /// stays as it is, with namespace `unknown`.
    package static func service(host raw: String, defaultNamespace: String?) -> ServiceRef {
        let host = stripPort(raw).lowercased()
        let labels = host.split(separator: ".", omittingEmptySubsequences: false)
        if labels.count >= 3, labels[2] == "svc" {
            let full = labels.count == 3 ? host + ".cluster.local" : host
            return ServiceRef(host: full, name: String(labels[0]), namespace: String(labels[1]))
        }
        let looksLikeIP = host.first?.isNumber == true || host.hasPrefix("[")
        if !looksLikeIP, !host.isEmpty {
            if labels.count == 1, let ns = defaultNamespace, ns != "unknown" {
                return ServiceRef(host: "\(host).\(ns).svc.cluster.local", name: host, namespace: ns)
            }
            // `svc.ns` is ambiguous with an external `host.tld`; only the proxy's own namespace is certain.
            if labels.count == 2, let ns = defaultNamespace, labels[1] == ns {
                return ServiceRef(
                    host: "\(host).svc.cluster.local", name: String(labels[0]), namespace: String(labels[1]))
            }
        }
        return ServiceRef(host: raw, name: raw, namespace: "unknown")
    }

    /// `details:9080` → `details`; `[::1]:80` → `[::1]`.
    package static func stripPort(_ authority: String) -> String {
        if authority.hasPrefix("[") {
            if let close = authority.firstIndex(of: "]") { return String(authority[...close]) }
            return authority
        }
        if let colon = authority.lastIndex(of: ":"), authority.firstIndex(of: ":") == colon,
            authority[authority.index(after: colon)...].allSatisfy(\.isNumber)
        {
            return String(authority[..<colon])
        }
        return authority
    }
}
