import Foundation
import Testing

@testable import SextantServer

@Suite struct ExpositionEncoderTests {
    /// Envoy's default histogram bounds, as a caller would stringify them.
    static let envoyBounds = ["0.5", "1", "5", "10", "25", "50", "100", "250", "500", "1000", "2500", "5000",
                              "10000", "30000", "60000", "300000", "600000", "1800000", "3600000", "+Inf"]

    @Test(arguments: [
        (0.0, "0"), (-0.0, "0"), (1.0, "1"), (-1.0, "-1"), (49.0, "49"), (0.5, "0.5"), (0.25, "0.25"),
        (-0.25, "-0.25"), (100_000.0, "100000"), (999_999.0, "999999"), (999_999.5, "999999.5"),
        (123_456.789, "123456.789"), (1e6, "1e+06"), (3_600_000.0, "3.6e+06"), (-3_600_000.0, "-3.6e+06"),
        (1_234_567.0, "1.234567e+06"), (12_345_678.9, "1.23456789e+07"), (123_456_789_012.0, "1.23456789012e+11"),
        (9_007_199_254_740_992.0, "9.007199254740992e+15"), (1e15, "1e+15"), (1e21, "1e+21"), (1e100, "1e+100"),
        (0.0001, "0.0001"), (0.00015, "0.00015"), (0.00001, "1e-05"), (2.5e-5, "2.5e-05"), (-1e-7, "-1e-07"),
        (0.1 + 0.2, "0.30000000000000004"), (Double.greatestFiniteMagnitude, "1.7976931348623157e+308"),
        (Double.leastNonzeroMagnitude, "5e-324"), (Double.infinity, "+Inf"), (-Double.infinity, "-Inf"),
        (Double.nan, "NaN"),
    ])
    func floatsRenderLikeGoShortestG(value: Double, expected: String) {
        #expect(ExpositionEncoder.formatFloat(value) == expected)
    }

    @Test(arguments: [
        (0.0, "0.0"), (0.001, "0.001"), (0.002, "0.002"), (0.01, "0.01"), (0.1, "0.1"), (0.9, "0.9"),
        (0.95, "0.95"), (0.99, "0.99"), (0.999, "0.999"), (1.0, "1.0"), (1.7, "1.7"), (10.0, "10.0"),
        (1e-10, "1e-10"), (1e-9, "1e-09"), (1e-5, "1e-05"), (0.0001, "0.0001"), (100_000.0, "100000.0"),
        (1e6, "1e+06"), (1e10, "1e+10"), (3_600_000.0, "3.6e+06"), (Double.infinity, "+Inf"),
    ])
    func canonicalFloatsFollowTheOpenMetricsExamples(value: Double, expected: String) {
        #expect(ExpositionEncoder.formatCanonicalFloat(value) == expected)
    }

    @Test func counterAndGaugeRenderHelpTypeAndSamples() {
        let families = [
            MetricFamily(
                name: "istio_requests_total",
                help: "Requests seen by the mesh.",
                type: .counter,
                samples: [
                    MetricSample(name: "istio_requests_total", labels: [.init("response_code", "200")], value: 49),
                    MetricSample(name: "istio_requests_total", labels: [.init("response_code", "503")], value: 2),
                ]
            ),
            MetricFamily(
                name: "sextant_queue_depth",
                type: .gauge,
                samples: [MetricSample(name: "sextant_queue_depth", value: 0.5, timestampMs: 1_520_879_607_789)]
            ),
        ]
        let expected = """
            # HELP istio_requests_total Requests seen by the mesh.
            # TYPE istio_requests_total counter
            istio_requests_total{response_code="200"} 49
            istio_requests_total{response_code="503"} 2
            # TYPE sextant_queue_depth gauge
            sextant_queue_depth 0.5 1520879607789

            """
        #expect(ExpositionEncoder.encode(families, format: .text004) == expected)
    }

    @Test func histogramBucketsRenderLeLikeValues() {
        let family = Self.envoyHistogram(labels: [.init("app", "api")])
        let text = ExpositionEncoder.encode([family], format: .text004)
        let lines = text.split(separator: "\n").map(String.init)
        #expect(lines.first == "# TYPE istio_request_duration_milliseconds histogram")
        #expect(lines[1] == #"istio_request_duration_milliseconds_bucket{app="api",le="0.5"} 0"#)
        #expect(lines[2] == #"istio_request_duration_milliseconds_bucket{app="api",le="1"} 1"#)
        #expect(lines[19] == #"istio_request_duration_milliseconds_bucket{app="api",le="3.6e+06"} 18"#)
        #expect(lines[20] == #"istio_request_duration_milliseconds_bucket{app="api",le="+Inf"} 19"#)
        #expect(lines[21] == #"istio_request_duration_milliseconds_sum{app="api"} 1234.5"#)
        #expect(lines[22] == #"istio_request_duration_milliseconds_count{app="api"} 19"#)
        #expect(lines.count == 23)
    }

    @Test func histogramSamplesAreRegroupedIntoSeriesOrder() {
        let first = Self.envoyHistogram(labels: [.init("app", "api")])
        let second = Self.envoyHistogram(labels: [.init("app", "web")])
        // Interleave the two series and reverse each one's buckets.
        var shuffled: [MetricSample] = []
        for (left, right) in zip(first.samples.reversed(), second.samples.reversed()) {
            shuffled.append(left)
            shuffled.append(right)
        }
        let family = MetricFamily(name: first.name, type: .histogram, samples: shuffled)
        let text = ExpositionEncoder.encode([family], format: .text004)
        let expected = ExpositionEncoder.encode(
            [MetricFamily(name: first.name, type: .histogram, samples: first.samples + second.samples)],
            format: .text004
        )
        // Series keep the order they first appear in (api's _count came first), buckets go by bound.
        #expect(text == expected)
    }

    @Test func summaryQuantilesAreOrderedBeforeSumAndCount() {
        let family = MetricFamily(
            name: "rpc_seconds",
            type: .summary,
            samples: [
                MetricSample(name: "rpc_seconds_count", value: 3),
                MetricSample(name: "rpc_seconds", labels: [.init("quantile", "0.99")], value: 0.3),
                MetricSample(name: "rpc_seconds_sum", value: 0.6),
                MetricSample(name: "rpc_seconds", labels: [.init("quantile", "0.5")], value: 0.1),
            ]
        )
        let expected = """
            # TYPE rpc_seconds summary
            rpc_seconds{quantile="0.5"} 0.1
            rpc_seconds{quantile="0.99"} 0.3
            rpc_seconds_sum 0.6
            rpc_seconds_count 3

            """
        #expect(ExpositionEncoder.encode([family], format: .text004) == expected)
    }

    @Test func labelValuesEscapeBackslashQuoteAndNewline() {
        let family = MetricFamily(
            name: "x",
            type: .gauge,
            samples: [MetricSample(name: "x", labels: [.init("path", "C:\\dir \"q\"\nnext")], value: 1)]
        )
        let text = ExpositionEncoder.encode([family], format: .text004)
        #expect(text == "# TYPE x gauge\nx{path=\"C:\\\\dir \\\"q\\\"\\nnext\"} 1\n")
    }

    @Test func helpEscapesQuotesOnlyInOpenMetrics() {
        let family = MetricFamily(
            name: "x",
            help: "A \"b\" c\\d\ne",
            type: .gauge,
            samples: [MetricSample(name: "x", value: 1)]
        )
        let text = ExpositionEncoder.encode([family], format: .text004)
        #expect(text.hasPrefix("# HELP x A \"b\" c\\\\d\\ne\n"))
        let openMetrics = ExpositionEncoder.encode([family], format: .openMetrics)
        #expect(openMetrics.contains("# HELP x A \\\"b\\\" c\\\\d\\ne\n"))
    }

    @Test func openMetricsNamesCounterFamiliesWithoutTotal() {
        let families = [
            MetricFamily(
                name: "istio_requests_total",
                help: "Requests.",
                type: .counter,
                samples: [MetricSample(name: "istio_requests_total", labels: [.init("code", "200")], value: 49)]
            ),
            MetricFamily(
                name: "legacy_hits",
                type: .counter,
                samples: [MetricSample(name: "legacy_hits", value: 3)]
            ),
            MetricFamily(name: "mystery", type: .untyped, samples: [MetricSample(name: "mystery", value: 7)]),
        ]
        let expected = """
            # TYPE istio_requests counter
            # HELP istio_requests Requests.
            istio_requests_total{code="200"} 49
            # TYPE legacy_hits counter
            legacy_hits_total 3
            # TYPE mystery unknown
            mystery 7
            # EOF

            """
        #expect(ExpositionEncoder.encode(families, format: .openMetrics) == expected)
    }

    @Test func openMetricsUsesCanonicalLeAndSecondTimestamps() {
        var family = Self.envoyHistogram(labels: [])
        for index in family.samples.indices {
            family.samples[index].timestampMs = 1_520_879_607_789
        }
        let text = ExpositionEncoder.encode([family], format: .openMetrics)
        #expect(text.contains("istio_request_duration_milliseconds_bucket{le=\"0.5\"} 0 1520879607.789\n"))
        #expect(text.contains("istio_request_duration_milliseconds_bucket{le=\"1.0\"} 1 1520879607.789\n"))
        #expect(text.contains("istio_request_duration_milliseconds_bucket{le=\"3.6e+06\"} 18 1520879607.789\n"))
        #expect(text.contains("istio_request_duration_milliseconds_bucket{le=\"+Inf\"} 19 1520879607.789\n"))
        #expect(text.hasSuffix("istio_request_duration_milliseconds_count 19 1520879607.789\n# EOF\n"))
    }

    @Test(arguments: [
        (Int64(1_520_879_607_789), "1520879607.789"), (1_000, "1"), (1_500, "1.5"), (1_050, "1.05"),
        (1_005, "1.005"), (0, "0"), (-1_500, "-1.5"),
    ])
    func openMetricsTimestampsAreSeconds(milliseconds: Int64, expected: String) {
        var out: [UInt8] = []
        ExpositionEncoder.appendSeconds(fromMilliseconds: milliseconds, to: &out)
        #expect(String(decoding: out, as: UTF8.self) == expected)
    }

    @Test func emptyInputInOpenMetricsIsJustEOF() {
        #expect(ExpositionEncoder.encode([], format: .openMetrics) == "# EOF\n")
        #expect(ExpositionEncoder.encode([], format: .text004) == "")
    }

    @Test func familiesWithoutSamplesAreLeftOut() {
        let families = [MetricFamily(name: "nothing", help: "Empty.", type: .gauge)]
        #expect(ExpositionEncoder.encode(families, format: .text004) == "")
    }

    @Test func familiesSharingANameAreMergedInsteadOfInterleaved() {
        let families = [
            MetricFamily(
                name: "a", type: .gauge, samples: [MetricSample(name: "a", labels: [.init("k", "1")], value: 1)]
            ),
            MetricFamily(name: "b", type: .gauge, samples: [MetricSample(name: "b", value: 2)]),
            MetricFamily(
                name: "a", type: .gauge, samples: [MetricSample(name: "a", labels: [.init("k", "2")], value: 3)]
            ),
        ]
        let expected = """
            # TYPE a gauge
            a{k="1"} 1
            a{k="2"} 3
            # TYPE b gauge
            b 2

            """
        #expect(ExpositionEncoder.encode(families, format: .text004) == expected)
    }

    @Test func specialValuesRenderAsPrometheusSpellsThem() {
        let family = MetricFamily(
            name: "v",
            type: .gauge,
            samples: [
                MetricSample(name: "v", labels: [.init("k", "nan")], value: .nan),
                MetricSample(name: "v", labels: [.init("k", "inf")], value: .infinity),
                MetricSample(name: "v", labels: [.init("k", "-inf")], value: -.infinity),
            ]
        )
        let text = ExpositionEncoder.encode([family], format: .text004)
        #expect(text.contains("v{k=\"nan\"} NaN\n"))
        #expect(text.contains("v{k=\"inf\"} +Inf\n"))
        #expect(text.contains("v{k=\"-inf\"} -Inf\n"))
    }

    @Test(.enabled(if: Promtool.isAvailable))
    func promtoolAcceptsTextOutput() throws {
        let text = ExpositionEncoder.encode(Self.lintCleanFamilies(timestamped: false), format: .text004)
        let result = try Promtool.run(["check", "metrics"], stdin: text)
        #expect(result.status == 0, "promtool said: \(result.output)")
        #expect(result.output.isEmpty, "promtool said: \(result.output)")
    }

    @Test(.enabled(if: Promtool.isAvailable))
    func promtoolParsesOpenMetricsOutput() throws {
        let text = ExpositionEncoder.encode(Self.lintCleanFamilies(timestamped: true), format: .openMetrics)
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("sextant-om-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let input = directory.appendingPathComponent("input.om")
        try Data(text.utf8).write(to: input)
        let blocks = directory.appendingPathComponent("blocks")
        let result = try Promtool.run(
            ["tsdb", "create-blocks-from", "openmetrics", "--quiet", input.path, blocks.path],
            stdin: ""
        )
        #expect(result.status == 0, "promtool said: \(result.output)")
    }

    // MARK: - Fixtures

    static func envoyHistogram(labels: [MetricLabel]) -> MetricFamily {
        let name = "istio_request_duration_milliseconds"
        var samples = envoyBounds.enumerated().map { position, bound in
            MetricSample(name: name + "_bucket", labels: labels + [.init("le", bound)], value: Double(position))
        }
        samples.append(MetricSample(name: name + "_sum", labels: labels, value: 1234.5))
        samples.append(MetricSample(name: name + "_count", labels: labels, value: Double(envoyBounds.count - 1)))
        return MetricFamily(name: name, type: .histogram, samples: samples)
    }

    /// A counter, a gauge and a histogram named so that promtool's linter has nothing to say.
    static func lintCleanFamilies(timestamped: Bool) -> [MetricFamily] {
        let timestamp: Int64? = timestamped ? 1_700_000_000_123 : nil
        let histogramName = "sextant_request_duration_seconds"
        let bounds = ["0.005", "0.5", "1", "2.5", "3600", "1000000", "+Inf"]
        var histogramSamples: [MetricSample] = []
        for service in ["api", "we\"b\\\n"] {
            for (position, bound) in bounds.enumerated() {
                histogramSamples.append(MetricSample(
                    name: histogramName + "_bucket",
                    labels: [.init("service", service), .init("le", bound)],
                    value: Double(position * 2),
                    timestampMs: timestamp
                ))
            }
            histogramSamples.append(MetricSample(
                name: histogramName + "_sum", labels: [.init("service", service)], value: 12.75, timestampMs: timestamp
            ))
            histogramSamples.append(MetricSample(
                name: histogramName + "_count", labels: [.init("service", service)], value: 12, timestampMs: timestamp
            ))
        }
        return [
            MetricFamily(
                name: "sextant_spans_received_total",
                help: "Spans received, by \"protocol\".\nSecond line \\ backslash.",
                type: .counter,
                samples: [
                    MetricSample(name: "sextant_spans_received_total", labels: [.init("protocol", "otlp")],
                                 value: 1_234_567, timestampMs: timestamp),
                    MetricSample(name: "sextant_spans_received_total", labels: [.init("protocol", "zipkin")],
                                 value: 0, timestampMs: timestamp),
                ]
            ),
            MetricFamily(
                name: "sextant_queue_fill_ratio",
                help: "How full the ingest queue is.",
                type: .gauge,
                samples: [MetricSample(name: "sextant_queue_fill_ratio", value: 0.000015, timestampMs: timestamp)]
            ),
            MetricFamily(name: histogramName, help: "Request latency.", type: .histogram, samples: histogramSamples),
        ]
    }

    /// Runs Debian's `promtool` when it is installed; tests using it are skipped otherwise.
    enum Promtool {
        static let path = "/usr/bin/promtool"

        static var isAvailable: Bool {
            FileManager.default.isExecutableFile(atPath: path)
        }

        static func run(_ arguments: [String], stdin: String) throws -> (status: Int32, output: String) {
            let directory = FileManager.default.temporaryDirectory
            let inputFile = directory.appendingPathComponent("sextant-promtool-\(UUID().uuidString).txt")
            try Data(stdin.utf8).write(to: inputFile)
            defer { try? FileManager.default.removeItem(at: inputFile) }
            let process = Process()
            process.executableURL = URL(fileURLWithPath: path)
            process.arguments = arguments
            process.standardInput = try FileHandle(forReadingFrom: inputFile)
            let pipe = Pipe()
            process.standardOutput = pipe
            process.standardError = pipe
            try process.run()
            let output = pipe.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return (process.terminationStatus, String(decoding: output, as: UTF8.self))
        }
    }
}
