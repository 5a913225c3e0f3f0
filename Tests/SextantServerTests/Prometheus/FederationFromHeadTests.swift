import Foundation
import Logging
import SextantModel
import SextantStore
import Testing

@testable import SextantServer

/// Federation of ingested series straight from the metric head gives, byte for byte, what
/// rendering the same series as families gives.
@Suite struct FederationFromHeadTests {
    static let now: Int64 = 1_800_000_000_000

    private static func point(_ name: String, _ value: Double, _ labels: [(String, String)], at ts: Int64, kind: MetricPoint.Kind = .gauge)
        -> MetricPoint
    {
        MetricPoint(name: name, kind: kind, labels: labels.map { MetricLabelPair($0.0, $0.1) }, value: value, timestampMs: ts)
    }

    @Test func headAndFamiliesRenderTheSame() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sextant-test-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let database = try SextantDatabase(configuration: .init(directory: folder), logger: Logger.quiet)
        var points: [MetricPoint] = []
        for source in ["web", "api", "a0", "a", "a_"] {
            for code in ["200", "503"] {
                points.append(
                    Self.point(
                        "istio_requests_total", Double(code.count + source.count),
                        [("reporter", "source"), ("source_app", source), ("response_code", code), ("empty", "")],
                        at: Self.now - 1000, kind: .counter))
            }
        }
        points.append(Self.point("up", 1, [("job", "api"), ("path", "a\"b\\c\nd")], at: Self.now - 2000))
        points.append(Self.point("up", 0, [("job", "api2")], at: Self.now - 600_000))  // too old to federate
        points.append(Self.point("aaa", 2.5, [], at: Self.now - 3000))
        points.append(Self.point("zzz", .infinity, [("x", "y")], at: Self.now - 3000))
        _ = try await database.write([IngestBatch(metrics: points)])

        // Computed series: one the same as an ingested one but older, one the same but newer, others between.
        let computed = [
            MetricFamily(
                name: "istio_requests_total", type: .counter,
                samples: [
                    MetricSample(
                        name: "istio_requests_total",
                        labels: [.init("reporter", "source"), .init("response_code", "200"), .init("source_app", "web")],
                        value: 1, timestampMs: Self.now - 5000),
                    MetricSample(
                        name: "istio_requests_total",
                        labels: [.init("reporter", "source"), .init("response_code", "503"), .init("source_app", "api")],
                        value: 99),
                    MetricSample(
                        name: "istio_requests_total",
                        labels: [.init("reporter", "destination"), .init("source_app", "web")], value: 3),
                ]),
            MetricFamily(name: "sextant_up", type: .gauge, samples: [MetricSample(name: "sextant_up", value: 1)]),
            MetricFamily(name: "a", type: .gauge, samples: [MetricSample(name: "a", value: 1)]),
        ]
        let view = database.metricHead.view()
        let since = Self.now - MetricsController.ingestedLookbackMs
        for text in [#"{__name__=~".+"}"#, "istio_requests_total", #"{source_app=~"a.*",reporter="source"}"#, #"up{path!=""}"#, #"{x="y"}"#, "nothing"] {
            let selectors = [try SeriesSelector(parsing: text)]
            let expected = Federation.renderBytes(computed + MetricsController.families(view, sinceMs: since), selectors: selectors, now: Self.now)
            let fromHead = Federation.renderBytes(computed, ingested: view, sinceMs: since, selectors: selectors, now: Self.now)
            #expect(String(decoding: fromHead, as: UTF8.self) == String(decoding: expected, as: UTF8.self), "\(text)")
        }
        let all = String(decoding: Federation.renderBytes(computed, ingested: view, sinceMs: since, selectors: [try SeriesSelector(parsing: #"{__name__=~".+"}"#)], now: Self.now), as: UTF8.self)
        #expect(all.contains(#"istio_requests_total{reporter="source",response_code="200",source_app="web"} 6 "#))
        #expect(all.contains(#"istio_requests_total{reporter="source",response_code="503",source_app="api"} 99 "#))
        #expect(!all.contains("api2"))
    }
}
