internal import Foundation
package import SextantModel
package import SextantWire

extension Opentelemetry_Proto_Common_V1_AnyValue {
    /// The value as text (arrays and maps as JSON-like text).
    var text: String {
        switch value {
        case .stringValue(let s)?: return s
        case .boolValue(let b)?: return b ? "true" : "false"
        case .intValue(let i)?: return String(i)
        case .doubleValue(let d)?: return String(d)
        case .bytesValue(let d)?: return d.base64EncodedString()
        case .arrayValue(let a)?: return "[" + a.values.map(\.text).joined(separator: ",") + "]"
        case .kvlistValue(let l)?: return "{" + l.values.map { "\($0.key)=\($0.value.text)" }.joined(separator: ",") + "}"
        case nil: return ""
        }
    }
}

extension Array where Element == Opentelemetry_Proto_Common_V1_KeyValue {
    /// Attributes as text, the first value winning for a repeated key.
    var textMap: [String: String] {
        var map: [String: String] = [:]
        for kv in self where map[kv.key] == nil { map[kv.key] = kv.value.text }
        return map
    }
}

/// Who a resource is (`service.name`, `service.namespace`, `k8s.*`), as a workload.
struct ResourceIdentity {
    var service: String
    var attributes: [String: String]

    init(_ resource: Opentelemetry_Proto_Resource_V1_Resource) {
        self.init(attributes: resource.attributes.textMap)
    }

    /// - Parameter attributes: the resource's attributes as text, or at least those named in `keys`.
    init(attributes: [String: String]) {
        self.attributes = attributes
        service = attributes["service.name"].flatMap { $0.isEmpty ? nil : $0 } ?? "unknown"
    }

    /// The resource attributes that the trace decoder reads (`service`, `workload`, the proxy's node id).
    static let keys: Set<String> = [
        "service.name", "service.instance.id", "service.namespace", "service.version", "k8s.namespace.name",
        "k8s.deployment.name", "k8s.statefulset.name", "k8s.daemonset.name", "k8s.cluster.name",
    ]

    /// An SDK service as a workload: `k8s.deployment.name` (or the like) else `service.name`, in
    /// `service.namespace` / `k8s.namespace.name`.
    var workload: WorkloadIdentity {
        let namespace = attributes["k8s.namespace.name"] ?? attributes["service.namespace"] ?? "unknown"
        let name = attributes["k8s.deployment.name"] ?? attributes["k8s.statefulset.name"]
            ?? attributes["k8s.daemonset.name"] ?? service
        var identity = WorkloadIdentity(
            namespace: namespace.isEmpty ? "unknown" : namespace, workload: name, app: service,
            version: attributes["service.version"], canonicalService: service,
            canonicalRevision: attributes["service.version"])
        if let cluster = attributes["k8s.cluster.name"] { identity.cluster = cluster }
        return identity
    }
}

enum HexBytes {
    static func string(_ data: Data) -> String {
        var out = ""
        out.reserveCapacity(data.count * 2)
        for byte in data {
            out.append(Character(Unicode.Scalar(hexDigit(byte >> 4))))
            out.append(Character(Unicode.Scalar(hexDigit(byte & 0x0F))))
        }
        return out
    }

    private static func hexDigit(_ v: UInt8) -> UInt8 { v < 10 ? 48 + v : 87 + v }
}
