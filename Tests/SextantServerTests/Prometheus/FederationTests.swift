import Testing

@testable import SextantServer

@Suite struct FederationTests {
    static let now: Int64 = 1_700_000_000_000

    static let families = [
        MetricFamily(
            name: "istio_requests_total",
            help: "Ignored by federation.",
            type: .counter,
            samples: [
                MetricSample(
                    name: "istio_requests_total",
                    labels: [.init("source_app", "web"), .init("destination_app", "api"), .init("reporter", "source")],
                    value: 49,
                    timestampMs: 1_699_999_990_000
                ),
                MetricSample(
                    name: "istio_requests_total",
                    labels: [.init("source_app", "api"), .init("destination_app", "db"), .init("reporter", "source")],
                    value: 7
                ),
                MetricSample(
                    name: "istio_requests_total",
                    labels: [
                        .init("source_app", "api"), .init("destination_app", "db"), .init("reporter", "destination"),
                    ],
                    value: 6
                ),
            ]
        ),
        MetricFamily(
            name: "sextant_rq",
            type: .histogram,
            samples: [
                MetricSample(name: "sextant_rq_bucket", labels: [.init("le", "0.5")], value: 1),
                MetricSample(name: "sextant_rq_bucket", labels: [.init("le", "+Inf")], value: 2),
                MetricSample(name: "sextant_rq_sum", value: 0.75),
                MetricSample(name: "sextant_rq_count", value: 2),
            ]
        ),
        MetricFamily(name: "go_goroutines", type: .gauge, samples: [MetricSample(name: "go_goroutines", value: 12)]),
    ]

    @Test func rendersTheUnionGroupedAndSortedByName() throws {
        let selectors = [
            try SeriesSelector(parsing: #"{__name__=~"sextant_.*"}"#),
            try SeriesSelector(parsing: #"istio_requests_total{reporter="source"}"#),
        ]
        let text = Federation.render(Self.families, selectors: selectors, now: Self.now)
        let expected = """
            # TYPE istio_requests_total untyped
            istio_requests_total{destination_app="api",reporter="source",source_app="web"} 49 1699999990000
            istio_requests_total{destination_app="db",reporter="source",source_app="api"} 7 1700000000000
            # TYPE sextant_rq_bucket untyped
            sextant_rq_bucket{le="+Inf"} 2 1700000000000
            sextant_rq_bucket{le="0.5"} 1 1700000000000
            # TYPE sextant_rq_count untyped
            sextant_rq_count 2 1700000000000
            # TYPE sextant_rq_sum untyped
            sextant_rq_sum 0.75 1700000000000

            """
        #expect(text == expected)
    }

    @Test func seriesMatchedByTwoSelectorsAppearOnce() throws {
        let selectors = [
            try SeriesSelector(parsing: "go_goroutines"),
            try SeriesSelector(parsing: #"{__name__=~"go_.*"}"#),
        ]
        let text = Federation.render(Self.families, selectors: selectors, now: Self.now)
        #expect(text == "# TYPE go_goroutines untyped\ngo_goroutines 12 1700000000000\n")
    }

    @Test func noMatchesRenderNothing() throws {
        let selectors = [try SeriesSelector(parsing: "nonexistent")]
        #expect(Federation.render(Self.families, selectors: selectors, now: Self.now).isEmpty)
        #expect(Federation.render(Self.families, selectors: [], now: Self.now).isEmpty)
    }

    @Test func externalLabelsAreAddedUnlessTheSeriesHasThem() throws {
        let families = [
            MetricFamily(name: "up", type: .gauge, samples: [
                MetricSample(name: "up", labels: [.init("job", "a")], value: 1, timestampMs: 5),
                MetricSample(
                    name: "up", labels: [.init("job", "b"), .init("cluster", "own")], value: 0, timestampMs: 5
                ),
            ]),
        ]
        let text = Federation.render(
            families,
            selectors: [try SeriesSelector(parsing: "up")],
            externalLabels: [.init("cluster", "east")],
            now: Self.now
        )
        let expected = """
            # TYPE up untyped
            up{cluster="east",job="a"} 1 5
            up{cluster="own",job="b"} 0 5

            """
        #expect(text == expected)
    }

    @Test func staleMarkersAndEmptyLabelsAreDropped() throws {
        let staleNaN = Double(bitPattern: Federation.staleNaNBits)
        let families = [
            MetricFamily(name: "up", type: .gauge, samples: [
                MetricSample(name: "up", labels: [.init("job", "gone")], value: staleNaN, timestampMs: 9),
                MetricSample(
                    name: "up", labels: [.init("job", "here"), .init("zone", "")], value: .nan, timestampMs: 9
                ),
            ]),
        ]
        let text = Federation.render(families, selectors: [try SeriesSelector(parsing: "up")], now: Self.now)
        #expect(text == "# TYPE up untyped\nup{job=\"here\"} NaN 9\n")
    }

    @Test func duplicateSeriesKeepTheNewestSample() throws {
        let families = [
            MetricFamily(name: "up", type: .gauge, samples: [MetricSample(name: "up", value: 1, timestampMs: 10)]),
            MetricFamily(name: "up", type: .gauge, samples: [MetricSample(name: "up", value: 2, timestampMs: 20)]),
        ]
        let text = Federation.render(families, selectors: [try SeriesSelector(parsing: "up")], now: Self.now)
        #expect(text == "# TYPE up untyped\nup 2 20\n")
    }

    @Test func labelValuesAreEscaped() throws {
        let families = [
            MetricFamily(name: "x", type: .gauge, samples: [
                MetricSample(name: "x", labels: [.init("path", "a\"b\\c\nd")], value: 1_500_000, timestampMs: 1),
            ]),
        ]
        let text = Federation.render(families, selectors: [try SeriesSelector(parsing: "x")], now: Self.now)
        #expect(text == "# TYPE x untyped\nx{path=\"a\\\"b\\\\c\\nd\"} 1.5e+06 1\n")
    }
}
