package import SextantModel

/// Traffic, errors, latency and saturation per service or workload over a window, as
/// `/api/v1/signals` returns them.
package struct GoldenSignals: Sendable, Codable {
    package enum Grouping: String, Sendable, CaseIterable {
        case service
        case workload
    }

    package struct Saturation: Sendable, Codable {
        /// Average calls in flight over the window (Little's law: summed duration / window).
        package var inFlight: Double
        /// Calls Envoy shed because a circuit breaker overflowed (`UO`).
        package var overflowRequests: Int
        /// Calls Envoy rate-limited (`RL`).
        package var rateLimitedRequests: Int
        /// What the proxies' own gauges say, when their stats are ingested.
        package var proxy: ProxyGauges?
    }

    /// Envoy's cluster gauges and overflow counters for an entity: for a workload, its own
    /// sidecar's inbound clusters; for a service, every caller's outbound cluster to it.
    package struct ProxyGauges: Sendable, Codable, Hashable {
        /// `upstream_rq_active`: requests in flight now.
        package var activeRequests: Double = 0
        /// `upstream_rq_pending_active`: requests waiting for a connection.
        package var pendingRequests: Double = 0
        /// `upstream_cx_active`: open connections.
        package var activeConnections: Double = 0
        /// `upstream_rq_pending_overflow` + `upstream_cx_overflow`: requests and connections refused by
        /// circuit breakers since the proxies started.
        package var overflows: Double = 0

        package init() {}
    }

    package struct Item: Sendable, Codable {
        package var name: String
        package var namespace: String
        package var requests: Int
        package var rps: Double
        package var errors: Int
        package var serverErrors: Int
        package var errorRate: Double
        package var latencyMs: ServiceGraph.Latency?
        package var saturation: Saturation
    }

    package var by: String
    package var windowSeconds: Double
    package var endUnixSeconds: Double
    package var items: [Item]
}

extension GoldenSignals {
    /// - Parameter gauges: proxy gauges by entity name (workload name or service host).
    package init(
        aggregates: [CallAggregate], by grouping: Grouping, windowSeconds: Double, endUnixSeconds: Double,
        name: String? = nil, gauges: [String: ProxyGauges] = [:]
    ) {
        struct Key: Hashable {
            var name: String
            var namespace: String
        }
        struct Totals {
            var requests = 0
            var errors = 0
            var serverErrors = 0
            var durationMicros: Double = 0
            var overflow = 0
            var rateLimited = 0
            var destinationLatency = LatencySketch()
            var sourceLatency = LatencySketch()
        }
        var totals: [Key: Totals] = [:]
        for a in aggregates where a.requestProtocol != .tcp {
            let key: Key
            switch grouping {
            case .service:
                key = Key(name: a.service.host, namespace: a.service.namespace)
                if let name, name != a.service.host, name != a.service.name { continue }
            case .workload:
                guard let w = a.destinationWorkload, w.isKnown else { continue }
                key = Key(name: w.workload, namespace: w.namespace)
                if let name, name != w.workload { continue }
            }
            var t = totals[key, default: Totals()]
            if a.reporter == .destination {
                t.destinationLatency.merge(a.latency)
            } else {
                t.sourceLatency.merge(a.latency)
            }
            if a.isCounted {
                t.requests += a.count
                if CallOutcome.isError(
                    responseCode: a.responseCode, grpcStatus: a.grpcStatus, requestProtocol: a.requestProtocol)
                {
                    t.errors += a.count
                }
                if CallOutcome.isServerError(responseCode: a.responseCode) { t.serverErrors += a.count }
                t.durationMicros += Double(a.durationMicrosSum)
                let flags = a.responseFlags.split(separator: ",")
                if flags.contains("UO") { t.overflow += a.count }
                if flags.contains("RL") { t.rateLimited += a.count }
            }
            totals[key] = t
        }
        let window = max(windowSeconds, 1)
        items = totals.filter { $0.value.requests > 0 }.map { key, t in
            let latency = t.destinationLatency.count > 0 ? t.destinationLatency : t.sourceLatency
            return Item(
                name: key.name, namespace: key.namespace, requests: t.requests,
                rps: ServiceGraph.Latency.round(Double(t.requests) / window), errors: t.errors,
                serverErrors: t.serverErrors,
                errorRate: ServiceGraph.Latency.round(Double(t.errors) / Double(t.requests)),
                latencyMs: ServiceGraph.Latency(latency),
                saturation: Saturation(
                    inFlight: ServiceGraph.Latency.round(t.durationMicros / 1_000_000 / window),
                    overflowRequests: t.overflow, rateLimitedRequests: t.rateLimited, proxy: gauges[key.name]))
        }.sorted { ($0.namespace, $0.name) < ($1.namespace, $1.name) }
        by = grouping.rawValue
        self.windowSeconds = windowSeconds
        self.endUnixSeconds = endUnixSeconds
    }
}
