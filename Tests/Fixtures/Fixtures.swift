import Foundation

/// Payloads captured from real Envoy 1.40 sidecars (a Bookinfo-like mesh: see envoy/topology.json).
package enum Fixtures {
    /// The bytes of a fixture file, by its path under `Tests/Fixtures/`.
    package static func bytes(_ path: String) throws -> [UInt8] {
        guard let url = Bundle.module.resourceURL?.appendingPathComponent(path),
            let data = FileManager.default.contents(atPath: url.path)
        else { throw FixtureError(path: path) }
        return [UInt8](data)
    }

    /// Every file under a fixture folder, sorted by name.
    package static func files(in folder: String, suffix: String) throws -> [String] {
        guard let url = Bundle.module.resourceURL?.appendingPathComponent(folder) else {
            throw FixtureError(path: folder)
        }
        return try FileManager.default.contentsOfDirectory(atPath: url.path)
            .filter { $0.hasSuffix(suffix) }
            .sorted()
            .map { "\(folder)/\($0)" }
    }

    /// The Envoy node id of a workload of the captured mesh.
    package static func nodeID(workload: String) throws -> String {
        struct Topology: Decodable {
            struct Workload: Decodable {
                var workload: String
                var node_id: String
            }
            var workloads: [Workload]
        }
        let topology = try JSONDecoder().decode(Topology.self, from: Data(bytes("envoy/topology.json")))
        guard let node = topology.workloads.first(where: { $0.workload == workload }) else {
            throw FixtureError(path: "envoy/topology.json#\(workload)")
        }
        return node.node_id
    }

    /// The six sidecars of the captured mesh.
    package static let workloads = [
        "productpage-v1", "details-v1", "reviews-v1", "reviews-v2", "reviews-v3", "ratings-v1",
    ]
}

package struct FixtureError: Error, CustomStringConvertible {
    package var path: String
    package var description: String { "fixture not found: \(path)" }
}
