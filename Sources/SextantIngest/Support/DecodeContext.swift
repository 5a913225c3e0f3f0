internal import SextantModel
internal import Synchronization

/// What one decode call learns once and reuses for every record of its payload: interned strings
/// and the identities that node ids, cluster names and hosts resolve to.
///
/// A payload comes from one proxy, so its records repeat the same node id, clusters and
/// services; resolving each once keeps a record's cost to the bytes that are its own.
final class DecodeContext {
    let strings = InternTable()
    private var nodes: [String: NodeIdentity?] = [:]
    private var clusters: [String: EnvoyCluster?] = [:]
    private var services: [ServiceKey: ServiceRef] = [:]
    /// Spans' routes by the bytes of the tags that decide them (`EnvoySpanTags.routeKey`).
    private var routeKeys = ByteKeyedIndex(limit: memoLimit)
    private var routes: [RoutedSpan?] = []
    /// Bytes for lowercasing a token before it is interned.
    private var scratch: [UInt8] = []

    private struct ServiceKey: Hashable, Sendable {
        var host: String
        var namespace: String?
    }

    /// Entries each memo keeps at most; a payload of distinct values cannot grow them further.
    private static let memoLimit = 1024

    // What every payload resolves alike, parsed once per process (node ids: `NodeIdentity.parsed`):
    // a mesh has a bounded set of proxies, clusters and services, which each new payload would
    // otherwise parse again.
    private static let sharedClusters = SharedMemo<String, EnvoyCluster?>()
    private static let sharedServices = SharedMemo<ServiceKey, ServiceRef>()
    private static let sharedRoutes = SharedMemo<RouteKey, RoutedSpan?>()

    /// A route's deciding bytes as a dictionary key, hashed in one pass rather than byte by byte.
    private struct RouteKey: Hashable, Sendable {
        var bytes: [UInt8]

        func hash(into hasher: inout Hasher) {
            hasher.combine(bytes.withUnsafeBytes { ByteHash.hash($0) })
        }
    }

    /// The last node id and cluster asked for: a payload's records mostly repeat them, and
    /// interned strings compare by identity first.
    private var lastNode: (id: String, identity: NodeIdentity?)?
    private var lastCluster: (raw: String, cluster: EnvoyCluster?)?
    /// The routes last resolved and what each was resolved from: a payload's records cycle
    /// through a few, and interned strings and shared identities compare by identity first, so a
    /// repeat costs a few pointer compares.
    private var recentRoutes = RecentEntries<RouteInputs, Route>()
    private var recentSpanRoutes = RecentEntries<[UInt8], RoutedSpan?>()

    struct RouteInputs: Equatable {
        var cluster: String
        var authority: String?
        var proxy: WorkloadIdentity
        var inboundByDefault: Bool
    }

    func recentRoute(_ inputs: RouteInputs) -> Route? {
        recentRoutes.first { $0 == inputs }
    }

    func remember(_ route: Route, for inputs: RouteInputs) {
        recentRoutes.add(inputs, route)
    }

    func node(_ nodeID: String) -> NodeIdentity? {
        if let lastNode, lastNode.id == nodeID { return lastNode.identity }
        let identity = memoizedNode(nodeID)
        lastNode = (nodeID, identity)
        return identity
    }

    private func memoizedNode(_ nodeID: String) -> NodeIdentity? {
        if let known = nodes[nodeID] { return known }
        let parsed = NodeIdentity.parsed(nodeID: nodeID)
        if nodes.count < Self.memoLimit { nodes[nodeID] = parsed }
        return parsed
    }

    func cluster(_ raw: String) -> EnvoyCluster? {
        if let lastCluster, lastCluster.raw == raw { return lastCluster.cluster }
        let cluster = memoizedCluster(raw)
        lastCluster = (raw, cluster)
        return cluster
    }

    private func memoizedCluster(_ raw: String) -> EnvoyCluster? {
        if let known = clusters[raw] { return known }
        let parsed = Self.sharedClusters.value(raw) { EnvoyCluster($0) }
        if clusters.count < Self.memoLimit { clusters[raw] = parsed }
        return parsed
    }

    func service(host: String, defaultNamespace: String?) -> ServiceRef {
        let key = ServiceKey(host: host, namespace: defaultNamespace)
        if let known = services[key] { return known }
        let resolved = Self.sharedServices.value(key) { ServiceHost.service(host: $0.host, defaultNamespace: $0.namespace) }
        if services.count < Self.memoLimit { services[key] = resolved }
        return resolved
    }

    /// The route of a span whose deciding bytes `key` writes, made by `make` the first time.
    /// A payload's spans cycle through a few routes, so the last few are first compared in place
    /// (`matching`) before the key is written and looked up.
    func routedSpan(
        matching: ([UInt8]) -> Bool, key: (inout [UInt8]) -> Void, make: () -> RoutedSpan?
    ) -> RoutedSpan? {
        if let known = recentSpanRoutes.first(where: matching) { return known }
        scratch.removeAll(keepingCapacity: true)
        key(&scratch)
        let key = scratch
        func shared() -> RoutedSpan? { Self.sharedRoutes.value(RouteKey(bytes: key)) { _ in make() } }
        let route: RoutedSpan?
        switch key.withUnsafeBytes({ routeKeys.index($0) }) {
        case .some((let index, false)): route = routes[index]
        case .some((_, true)):
            route = shared()
            routes.append(route)
        case nil: route = shared()
        }
        recentSpanRoutes.add(key, route)
        return route
    }

    /// The string of an ASCII token lowercased (interned); nil when the bytes are not all ASCII.
    func lowercasedASCII(_ bytes: UnsafeRawBufferPointer) -> String? {
        var upper = false
        var i = 0
        // Eight bytes at a time: with no byte at 0x80 or above, b + 0x3F sets the high bit for
        // b >= 0x41 and b + 0x25 for b > 0x5A, without carrying into the next byte.
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        while i + 8 <= bytes.count {
            let word = bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            if word & highs != 0 { return nil }
            if (word &+ ones &* 0x3F) & ~(word &+ ones &* 0x25) & highs != 0 { upper = true }
            i += 8
        }
        while i < bytes.count {
            let byte = bytes[i]
            if byte >= 0x80 { return nil }
            if byte >= 0x41 && byte <= 0x5A { upper = true }
            i += 1
        }
        guard upper else { return strings.string(bytes) }
        scratch.removeAll(keepingCapacity: true)
        for byte in bytes { scratch.append(byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte) }
        return scratch.withUnsafeBytes { strings.string($0) }
    }
}

/// The last few values a payload resolved and what each was resolved from, searched in order: a
/// value found moves up one place, so those a payload repeats most are tried first; past
/// `capacity`, a new one takes the places in turn.
struct RecentEntries<Key, Value> {
    private var entries: [(key: Key, value: Value)] = []
    private var nextSlot = 0
    let capacity = 8

    /// The value of the first entry whose key matches. Entries are compared where they lie, not
    /// copied nor moved: a copy of a key retains each of its strings and boxes.
    func first(where matches: (Key) -> Bool) -> Value? {
        for i in entries.indices where matches(entries[i].key) {
            return entries[i].value
        }
        return nil
    }

    mutating func add(_ key: Key, _ value: Value) {
        if entries.count < capacity {
            entries.append((key, value))
        } else {
            entries[nextSlot] = (key, value)
            nextSlot = (nextSlot + 1) % capacity
        }
    }
}

/// A process-wide memo of a pure function, consulted once per distinct key and payload. It holds
/// at most `limit` entries and starts over when full, so a stream of distinct keys (a node id per
/// request, say) costs memory no more than that.
package final class SharedMemo<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    private let entries = Mutex<[Key: Value]>([:])
    private let limit: Int

    package init(limit: Int = 8192) {
        self.limit = limit
    }

    package func value(_ key: Key, _ make: (Key) -> Value) -> Value {
        if let known = entries.withLock({ $0[key] }) { return known }
        let made = make(key)
        entries.withLock { table in
            if table.count >= limit { table.removeAll(keepingCapacity: true) }
            table[key] = made
        }
        return made
    }
}
