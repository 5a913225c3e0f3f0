/// Kiali's four graph types: what a node stands for.
package enum GraphType: String, Sendable, CaseIterable {
    case workload
    case app
    case versionedApp
    case service
}
