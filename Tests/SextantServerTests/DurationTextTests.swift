import Testing

@testable import SextantServer

/// One duration grammar, Prometheus's, for query windows and flags.
@Suite struct DurationTextTests {
    @Test(arguments: [
        ("250ms", 0.25), ("90s", 90), ("15m", 900), ("1h30m", 5400), ("1.5h", 5400), ("7d", 604_800), ("2w", 1_209_600),
        ("1y", 31_536_000), ("90", 90), ("0.5", 0.5), ("1m1ms", 60.001),
    ])
    func reads(text: String, seconds: Double) {
        #expect(DurationText.seconds(text) == seconds)
    }

    @Test(arguments: ["", "h", "5x", "1h5", "-1m", "1 h", "m5", "1hh", "٣s"])
    func refuses(text: String) {
        #expect(DurationText.seconds(text) == nil)
    }

    @Test func writesFlagDefaultsBackInTheirOwnGrammar() {
        for (seconds, text) in [(86_400, "24h"), (604_800, "7d"), (7_776_000, "90d"), (60, "1m"), (600, "10m"), (90, "90s")] {
            #expect(DurationText.text(seconds: Int64(seconds)) == text)
            #expect(DurationText.seconds(text) == Double(seconds))
        }
    }
}
