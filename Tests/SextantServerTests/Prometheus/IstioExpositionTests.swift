import Foundation
import Logging
import SextantModel
import SextantStore
import Testing

@testable import SextantServer

/// Istio's families written straight from their totals give, byte for byte, what rendering them
/// as families through the general encoder gives, in both formats.
@Suite struct IstioExpositionTests {
    private static let web = WorkloadIdentity(namespace: "shop", workload: "web-v1", app: "web", version: "v1")
    private static let api = WorkloadIdentity(
        namespace: "shop", workload: "api-v1", app: "api", version: "v1", principal: "spiffe://cluster.local/ns/shop/sa/api")
    private static let odd = WorkloadIdentity(namespace: "ns \"q\"", workload: "odd\\name\nline", app: "ünï")
    private static let service = ServiceRef(host: "api.shop.svc.cluster.local", name: "api", namespace: "shop")

    private static func series(
        _ reporter: Reporter, _ source: WorkloadIdentity, _ destination: WorkloadIdentity, code: Int, grpc: Int? = nil,
        count: Int
    ) -> SeriesTotals {
        let n = IstioHistogram.bounds.count
        let buckets = (0..<n).map { min(count, $0 * count / 7) }
        return SeriesTotals(
            reporter: reporter, source: source, destination: destination, service: service,
            requestProtocol: grpc == nil ? .http : .grpc, responseCode: code, grpcStatus: grpc, responseFlags: "-",
            securityPolicy: "mutual_tls", count: count, durationMillisSum: Double(count) * 2.75,
            requestBytesSum: Int64(count * 120), responseBytesSum: Int64(count * 3400), durationBuckets: buckets,
            requestBytesBuckets: buckets.reversed().sorted(), responseBytesBuckets: buckets)
    }

    private static let totals = IstioTotals(
        requests: [
            series(.source, web, api, code: 200, count: 1200),
            series(.destination, web, api, code: 503, count: 7),
            series(.destination, odd, api, code: 200, grpc: 14, count: 3),
            series(.source, web, .unknown, code: 0, count: 1),
        ],
        connections: [
            TCPSeriesTotals(
                reporter: .source, source: web, destination: api, service: service, responseFlags: "-",
                securityPolicy: "unknown", connections: 12, receivedBytes: 4000, sentBytes: 90_000),
            TCPSeriesTotals(
                reporter: .destination, source: odd, destination: api, service: service, responseFlags: "UF",
                securityPolicy: "mutual_tls", connections: 2, receivedBytes: 0, sentBytes: 5),
        ])

    @Test(arguments: [ExpositionFormat.text004, .openMetrics])
    func writtenStraightEqualsTheFamilies(format: ExpositionFormat) {
        var direct: [UInt8] = []
        IstioExposition.append(Self.totals, merging: [:], format: format, to: &direct)
        let families = IstioMetrics.families(Self.totals.requests) + IstioMetrics.tcpFamilies(Self.totals.connections)
        var expected = ExpositionEncoder.encodeBytes(families, format: format)
        if format == .openMetrics { expected.removeLast("# EOF\n".utf8.count) }
        #expect(String(decoding: direct, as: UTF8.self) == String(decoding: expected, as: UTF8.self))
        #expect(direct.count > 10_000)
    }

    @Test func remoteWrittenIstioSeriesJoinTheirFamily() {
        let ingested = MetricFamily(
            name: "istio_requests_total", help: "Ingested counter (newest sample per series).", type: .counter,
            samples: [MetricSample(name: "istio_requests_total", labels: [MetricLabel("pod", "x")], value: 5, timestampMs: 9)])
        var out: [UInt8] = []
        IstioExposition.append(
            IstioTotals(requests: [], connections: []), merging: [ingested.name: ingested], format: .text004, to: &out)
        #expect(
            String(decoding: out, as: UTF8.self)
                == "# HELP istio_requests_total Requests observed by the mesh's proxies.\n"
                + "# TYPE istio_requests_total counter\nistio_requests_total{pod=\"x\"} 5 9\n")
        out = []
        IstioExposition.append(Self.totals, merging: [ingested.name: ingested], format: .text004, to: &out)
        let text = String(decoding: out, as: UTF8.self)
        #expect(text.components(separatedBy: "# TYPE istio_requests_total counter").count == 2)
        #expect(text.contains("istio_requests_total{pod=\"x\"} 5 9\n# HELP istio_request_duration_milliseconds"))
    }

    @Test func federatedStraightEqualsTheFamilies() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sextant-test-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let database = try SextantDatabase(configuration: .init(directory: folder), logger: Logger.quiet)
        let now: Int64 = 1_800_000_000_000
        // Remote-written: one series the same as a computed one (newer), one between computed ones.
        let same = IstioMetrics.labels(Self.totals.requests[0]).filter { !$0.value.isEmpty }
        let between = same.map { $0.name == "source_workload" ? MetricLabel($0.name, "web-v1b") : $0 }
        _ = try await database.write([
            IngestBatch(metrics: [same, between].map { labels in
                MetricPoint(
                    name: "istio_requests_total", kind: .counter, labels: labels.map { MetricLabelPair($0.name, $0.value) },
                    value: 77, timestampMs: now - 1000)
            })
        ])
        let own = [
            MetricFamily(name: "sextant_up", type: .gauge, samples: [MetricSample(name: "sextant_up", value: 1)]),
            MetricFamily(
                name: "a_histogram", type: .histogram,
                samples: [
                    MetricSample(name: "a_histogram_bucket", labels: [MetricLabel("le", "1"), MetricLabel("x", "y")], value: 1),
                    MetricSample(name: "a_histogram_bucket", labels: [MetricLabel("le", "+Inf"), MetricLabel("x", "y")], value: 2),
                ]),
        ]
        let families = own + IstioMetrics.families(Self.totals.requests) + IstioMetrics.tcpFamilies(Self.totals.connections)
        let view = database.metricHead.view()
        let since = now - MetricsController.ingestedLookbackMs
        for text in [
            #"{__name__=~".+"}"#, #"{__name__=~"istio_.*"}"#, "istio_request_bytes_bucket", #"{le=~"1.*",reporter="destination"}"#,
            #"{destination_workload="api-v1",response_code!="200"}"#, #"istio_tcp_sent_bytes_total{source_workload=~"odd.*"}"#,
            #"istio_requests_total{grpc_response_status=""}"#, "nothing",
        ] {
            let selectors = [try SeriesSelector(parsing: text)]
            let expected = Federation.renderBytes(families, ingested: view, sinceMs: since, selectors: selectors, now: now)
            let direct = Federation.renderBytes(
                own, istio: Self.totals, ingested: view, sinceMs: since, selectors: selectors, now: now)
            #expect(String(decoding: direct, as: UTF8.self) == String(decoding: expected, as: UTF8.self), "\(text)")
        }
        let all = String(
            decoding: Federation.renderBytes(
                own, istio: Self.totals, ingested: view, sinceMs: since,
                selectors: [try SeriesSelector(parsing: #"{__name__=~"istio_.*"}"#)], now: now),
            as: UTF8.self)
        #expect(all.contains("source_workload=\"web-v1b\",source_workload_namespace=\"shop\"} 77 \(now - 1000)\n"))
        #expect(all.contains("le=\"+Inf\""))
    }
}
