import SextantAnalytics
import SextantModel
import SextantStore

/// Where the graph, the signals and the diff get their calls: the local store, or (query mode,
/// `--query-prometheus`) Istio's series in a Prometheus-compatible store.
protocol CallSource: Sendable {
    /// Calls and TCP connections of each `[from, to)` (Unix seconds), in order.
    func aggregates(_ windows: [(from: Double, to: Double)]) async throws -> [[CallAggregate]]
    /// Said in every answer drawn from this source; nil for the local store.
    var answerSource: AnswerSource? { get }
}

extension CallSource {
    /// Calls and TCP connections of `[from, to)`.
    func aggregates(from: Double, to: Double) async throws -> [CallAggregate] {
        try await aggregates([(from, to)])[0]
    }
}

/// Where an answer's numbers come from, when not from the local store.
struct AnswerSource: Sendable, Codable, Hashable {
    /// `prometheus`.
    var kind: String
    var url: String
    /// `buckets`: latency interpolated from `istio_request_duration_milliseconds` buckets (within
    /// a bucket's width); `exact`: from the `sextant_request_duration_quantile_seconds` gauges.
    var latency: String
    var note: String
}

/// The calls the local store holds.
struct LocalCalls: CallSource {
    let database: SextantDatabase

    func aggregates(_ windows: [(from: Double, to: Double)]) async throws -> [[CallAggregate]] {
        var result: [[CallAggregate]] = []
        for window in windows {
            let from = Int64(window.from * 1_000_000)
            let to = Int64(window.to * 1_000_000)
            result.append(
                try await database.callAggregates(fromMicros: from, toMicros: to)
                    + database.connectionAggregates(fromMicros: from, toMicros: to))
        }
        return result
    }

    var answerSource: AnswerSource? { nil }
}

/// Istio's series in a Prometheus-compatible store, as Kiali reads them (`IstioSeriesReader`).
struct PrometheusCalls: CallSource {
    let api: PrometheusAPI

    var answerSource: AnswerSource? {
        AnswerSource(
            kind: "prometheus", url: api.baseURL, latency: "buckets",
            note: "counts are each series' increase over the window; latency is interpolated within "
                + "istio_request_duration_milliseconds buckets")
    }

    func aggregates(_ windows: [(from: Double, to: Double)]) async throws -> [[CallAggregate]] {
        guard !windows.isEmpty else { return [] }
        let times = Array(Set(windows.flatMap { [$0.from, $0.to] })).sorted()
        let longest = windows.map { $0.to - $0.from }.max() ?? 0
        // Far enough back to find each series' last value before the window's start.
        let lookback = Int(max(longest, 3_600) + 900)
        let values = try await withThrowingTaskGroup(of: (Int, [Double: [PromSample]]).self) { group in
            for (i, metric) in IstioSeriesReader.metrics.enumerated() {
                group.addTask { (i, try await instants("last_over_time(\(metric)[\(lookback)s])", at: times)) }
            }
            var byMetric = [[Double: [PromSample]]](repeating: [:], count: IstioSeriesReader.metrics.count)
            for try await (i, value) in group { byMetric[i] = value }
            return byMetric
        }
        return windows.map { window in
            func pair(_ i: Int) -> (at: [PromSample], before: [PromSample]) {
                (values[i][window.to] ?? [], values[i][window.from] ?? [])
            }
            return IstioSeriesReader.aggregates(
                IstioSeriesReader.Window(
                    requests: pair(0), durationBuckets: pair(1), durationSum: pair(2), requestBytesSum: pair(3),
                    responseBytesSum: pair(4), tcpOpened: pair(5), tcpSent: pair(6), tcpReceived: pair(7)))
        }
    }

    /// The vector at each time: one range query when the times are evenly spaced, else one
    /// instant query each.
    private func instants(_ promql: String, at times: [Double]) async throws -> [Double: [PromSample]] {
        if times.count > 2 {
            let step = times[1] - times[0]
            let even = zip(times, times.dropFirst()).allSatisfy { abs(($1 - $0) - step) < 0.001 }
            if even, step >= 1 {
                let byTime = try await api.range(promql, start: times[0], end: times.last!, step: step)
                // Evaluation times come back as the store computed them: match them to ours.
                var result: [Double: [PromSample]] = [:]
                for time in times {
                    result[time] = byTime.first { abs($0.key - time) < 0.001 }?.value ?? []
                }
                return result
            }
        }
        var result: [Double: [PromSample]] = [:]
        for time in times { result[time] = try await api.instant(promql, at: time) }
        return result
    }
}

extension PrometheusCalls {
    /// Sets p50, p90 and p99 of each item from `sextant_request_duration_quantile_seconds` where
    /// the window is one the gauges cover (1m or 5m, ending now) and one Sextant's gauges alone
    /// speak for the item (quantiles of two Sextants' calls cannot be merged); destination
    /// reports first, as the signals' latency prefers them.
    /// - Returns: the names of the items so set.
    func exactLatency(
        _ items: inout [GoldenSignals.Item], by grouping: GoldenSignals.Grouping, windowSeconds: Double,
        endSeconds: Double, now: Double
    ) async throws -> [String] {
        let label: String
        switch windowSeconds {
        case 60: label = "1m"
        case 300: label = "5m"
        default: return []
        }
        guard abs(endSeconds - now) <= 60, !items.isEmpty else { return [] }
        let samples = try await api.instant("sextant_request_duration_quantile_seconds{window=\"\(label)\"}", at: now)
        struct Key: Hashable {
            var name: String
            var namespace: String
            var reporter: String
            var percentile: String
        }
        var found: [Key: [Double]] = [:]
        for sample in samples {
            let l = sample.labels
            let name = grouping == .service ? l["destination_service"] : l["destination_workload"]
            let namespace = grouping == .service ? l["destination_service_namespace"] : l["destination_workload_namespace"]
            guard let name, let namespace, let reporter = l["reporter"], let percentile = l["percentile"] else { continue }
            found[Key(name: name, namespace: namespace, reporter: reporter, percentile: percentile), default: []]
                .append(sample.value)
        }
        var exact: [String] = []
        for i in items.indices where items[i].latencyMs != nil {
            for reporter in ["destination", "source"] {
                let values = ["50", "90", "99"].map {
                    found[Key(name: items[i].name, namespace: items[i].namespace, reporter: reporter, percentile: $0)]
                }
                guard values.allSatisfy({ $0?.count == 1 }) else { continue }
                let ms = values.map { ServiceGraph.Latency.round($0![0] * 1_000) }
                items[i].latencyMs!.p50 = ms[0]
                items[i].latencyMs!.p90 = ms[1]
                items[i].latencyMs!.p99 = ms[2]
                exact.append(items[i].name)
                break
            }
        }
        return exact
    }
}
