import Testing

@testable import SextantServer

@Suite struct SeriesSelectorTests {
    private static func labels(_ pairs: KeyValuePairs<String, String>) -> [MetricLabel] {
        pairs.map { MetricLabel($0.key, $0.value) }
    }

    @Test func bareMetricNameMatchesOnlyThatName() throws {
        let selector = try SeriesSelector(parsing: "istio_requests_total")
        #expect(selector.matches(name: "istio_requests_total", labels: Self.labels(["app": "api"])))
        #expect(!selector.matches(name: "istio_requests", labels: []))
        #expect(selector.metricName == "istio_requests_total")
    }

    @Test func equalAndNotEqualCompareWholeValues() throws {
        let selector = try SeriesSelector(parsing: #"up{job="api",env!="dev"}"#)
        #expect(selector.matches(name: "up", labels: Self.labels(["job": "api", "env": "prod"])))
        #expect(!selector.matches(name: "up", labels: Self.labels(["job": "api", "env": "dev"])))
        #expect(!selector.matches(name: "up", labels: Self.labels(["job": "api-2", "env": "prod"])))
        #expect(!selector.matches(name: "down", labels: Self.labels(["job": "api"])))
    }

    @Test func regexMatchersAreFullyAnchored() throws {
        let selector = try SeriesSelector(parsing: #"{job=~"api|api-v2",path!~"/health.*"}"#)
        #expect(selector.matches(name: "x", labels: Self.labels(["job": "api", "path": "/users"])))
        #expect(selector.matches(name: "x", labels: Self.labels(["job": "api-v2", "path": "/users"])))
        #expect(!selector.matches(name: "x", labels: Self.labels(["job": "my-api", "path": "/users"])))
        #expect(!selector.matches(name: "x", labels: Self.labels(["job": "api-v3", "path": "/users"])))
        #expect(!selector.matches(name: "x", labels: Self.labels(["job": "api", "path": "/healthz"])))
        #expect(selector.matches(name: "x", labels: Self.labels(["job": "api", "path": "/x/health"])))
    }

    @Test func anchoringAppliesToTheWholeAlternation() throws {
        let matcher = try LabelMatcher(name: "a", kind: .regexMatch, value: "a|ab")
        #expect(matcher.matches("ab"))
        #expect(!matcher.matches("abc"))
        let general = try LabelMatcher(name: "a", kind: .regexMatch, value: "a|ab+")
        #expect(general.matches("abbb"))
        #expect(!general.matches("abbbc"))
        #expect(!general.matches("xa"))
        let prefixed = try LabelMatcher(name: "a", kind: .regexMatch, value: "fo+")
        #expect(prefixed.matches("fooo"))
        #expect(!prefixed.matches("fooo\n"))
        #expect(!prefixed.matches("xfoo"))
    }

    @Test func regexDotAlsoMatchesNewlines() throws {
        let matcher = try LabelMatcher(name: "a", kind: .regexMatch, value: "a.b")
        #expect(matcher.matches("a\nb"))
        let general = try LabelMatcher(name: "a", kind: .regexMatch, value: "x[0-9]+.*y")
        #expect(general.matches("x12\n\ny"))
    }

    @Test func regexesAreRE2sInSyntaxAndCost() throws {
        // Nested quantifiers cost what a plain `a+b` costs: no backtracking.
        let nested = try LabelMatcher(name: "job", kind: .regexMatch, value: "(a+)+b")
        let run = String(repeating: "a", count: 10_000)
        #expect(!nested.matches(run))
        #expect(nested.matches(run + "b"))
        #expect(try LabelMatcher(name: "job", kind: .regexMatch, value: "(a|aa)+").matches(run))
        // RE2's syntax, as Prometheus's: classes, repetition counts, case folding, UTF-8.
        #expect(try LabelMatcher(name: "a", kind: .regexMatch, value: #"\d{3}-[[:alpha:]]+"#).matches("123-abc"))
        #expect(try LabelMatcher(name: "a", kind: .regexMatch, value: "(?i)GET|post").matches("get"))
        #expect(try LabelMatcher(name: "a", kind: .regexMatch, value: "caf.").matches("café"))
        // What a backtracking engine accepts and RE2 does not: backreferences, look-arounds.
        for pattern in [#"(a)\1"#, "a(?=b)", "(?<!a)b"] {
            #expect(throws: SelectorError.self) { try LabelMatcher(name: "a", kind: .regexMatch, value: pattern) }
        }
    }

    @Test(arguments: [
        (LabelMatcher.Kind.equal, "", true), (.equal, "x", false), (.notEqual, "x", true), (.notEqual, "", false),
        (.regexMatch, ".*", true), (.regexMatch, "x|", true), (.regexMatch, ".+", false), (.regexMatch, "x?", true),
        (.regexNoMatch, ".+", true), (.regexNoMatch, "", false),
    ])
    func matchersKnowWhetherTheyMatchTheEmptyString(kind: LabelMatcher.Kind, value: String, expected: Bool) throws {
        #expect(try LabelMatcher(name: "a", kind: kind, value: value).matchesEmpty == expected)
    }

    @Test func missingLabelsCountAsEmpty() throws {
        let lacking = try SeriesSelector(parsing: #"up{zone=""}"#)
        #expect(lacking.matches(name: "up", labels: []))
        #expect(!lacking.matches(name: "up", labels: Self.labels(["zone": "a"])))
        let notEqual = try SeriesSelector(parsing: #"up{zone!="a"}"#)
        #expect(notEqual.matches(name: "up", labels: []))
        let optional = try SeriesSelector(parsing: #"up{zone=~"a|"}"#)
        #expect(optional.matches(name: "up", labels: []))
        #expect(optional.matches(name: "up", labels: Self.labels(["zone": "a"])))
        #expect(!optional.matches(name: "up", labels: Self.labels(["zone": "b"])))
        let required = try SeriesSelector(parsing: #"up{zone=~".+"}"#)
        #expect(!required.matches(name: "up", labels: []))
        #expect(!required.matches(name: "up", labels: Self.labels(["zone": ""])))
    }

    @Test func metricNameCanBeMatchedThroughNameLabel() throws {
        let selector = try SeriesSelector(parsing: #"{__name__=~"istio_.*",reporter="source"}"#)
        #expect(selector.matches(name: "istio_requests_total", labels: Self.labels(["reporter": "source"])))
        #expect(!selector.matches(name: "istio_requests_total", labels: Self.labels(["reporter": "destination"])))
        #expect(!selector.matches(name: "envoy_cluster_upstream_rq", labels: Self.labels(["reporter": "source"])))
        #expect(selector.metricName == nil)
        let negated = try SeriesSelector(parsing: #"{job="collector",__name__!~"go_.*"}"#)
        #expect(negated.matches(name: "sextant_up", labels: Self.labels(["job": "collector"])))
        #expect(!negated.matches(name: "go_goroutines", labels: Self.labels(["job": "collector"])))
    }

    @Test func quotingStylesSpacesAndTrailingCommaAreAccepted() throws {
        let selector = try SeriesSelector(parsing: " up { a = 'x\"y' , b=~`\\d+`, c!=\"q\\\"\\\\\\n\\u00e9\", } ")
        let values = selector.matchers.map(\.value)
        #expect(selector.matchers.map(\.name) == ["__name__", "a", "b", "c"])
        #expect(values == ["up", "x\"y", "\\d+", "q\"\\\né"])
        #expect(selector.matches(name: "up", labels: Self.labels(["a": "x\"y", "b": "42"])))
        #expect(!selector.matches(name: "up", labels: Self.labels(["a": "x\"y", "b": "4x"])))
    }

    @Test func goEscapesDecodeToBytes() throws {
        let selector = try SeriesSelector(parsing: #"x{a="\x41\101\t\U0001F600", b='it\'s'}"#)
        #expect(selector.matchers[1].value == "AA\t😀")
        #expect(selector.matchers[2].value == "it's")
    }

    @Test func quotedMetricNameInsideBracesIsAccepted() throws {
        let selector = try SeriesSelector(parsing: #"{"sextant.spans", protocol="otlp"}"#)
        #expect(selector.metricName == "sextant.spans")
        #expect(selector.matches(name: "sextant.spans", labels: Self.labels(["protocol": "otlp"])))
    }

    @Test func matchersAppliesToSamples() throws {
        let selector = try SeriesSelector(parsing: #"x_bucket{le="+Inf"}"#)
        #expect(selector.matches(MetricSample(name: "x_bucket", labels: [.init("le", "+Inf")], value: 1)))
        #expect(!selector.matches(MetricSample(name: "x_bucket", labels: [.init("le", "1")], value: 1)))
    }

    @Test func descriptionIsCanonicalSelectorSyntax() throws {
        let selector = try SeriesSelector(parsing: "up{job =~ 'a\"b'}")
        #expect(selector.description == #"{__name__="up",job=~"a\"b"}"#)
    }

    @Test(arguments: [
        ("", "empty selector"),
        ("   ", "empty selector"),
        (#"{job=~".*"}"#, "needs a metric name or at least one matcher that does not match the empty string"),
        (#"{job=""}"#, "needs a metric name or at least one matcher"),
        ("{}", "needs a metric name"),
        ("foo{", "missing \"}\" for the \"{\" at position 4"),
        (#"foo{a="b""#, "missing \"}\""),
        ("foo{a}", "expected a matching operator (=, !=, =~ or !~) after label name a at position 6"),
        ("foo{!}", "unexpected \"!\", expected a label name or \"}\" at position 5"),
        (#"foo{a="b"}}"#, "expected the end of the selector at position 11"),
        (#"foo{a="b" c="d"}"#, "expected \",\" or \"}\" at position 11"),
        ("foo{a=b}", "expected a quoted label value after \"=\" at position 7"),
        (#"foo{a=="b"}"#, "expected a quoted label value after \"=\""),
        (#"foo{a!"b"}"#, "expected a matching operator"),
        (#"foo{a=~"("}"#, "invalid regular expression \"(\" for label a at position 8"),
        (#"foo{a=~"a)|(b"}"#, "invalid regular expression"),
        (#"foo{__name__="bar"}"#, "metric name \"foo\" must not also be matched by __name__ at position 5"),
        (#"{"a","b"}"#, "metric name must not be set twice"),
        (#"foo{a="\q"}"#, "unknown escape sequence \"\\q\" at position 8"),
        (#"foo{a="\x4"}"#, "malformed escape sequence"),
        (#"foo{a="\uD800"}"#, "not a valid Unicode code point"),
        (#"foo{a="b"#, "unterminated quoted string at position 7"),
        ("foo{a=\"b\nc\"}", "newline in quoted string"),
        ("foo bar", "expected the end of the selector at position 5"),
        ("foo[5m]", "expected the end of the selector at position 4"),
        ("1foo", "expected a metric name or \"{\" at position 1"),
        ("foo{a:b=\"c\"}", "expected a matching operator"),
        ("rate(foo[5m])", "expected the end of the selector"),
    ])
    func invalidSelectorsAreRejectedWithAMessage(input: String, fragment: String) {
        #expect {
            _ = try SeriesSelector(parsing: input)
        } throws: { error in
            guard let error = error as? SelectorError else {
                return false
            }
            return error.message.contains(fragment)
        }
    }

    @Test func errorMessagesQuoteTheSelector() {
        do {
            _ = try SeriesSelector(parsing: "foo{!}")
            Issue.record("expected an error")
        } catch {
            let expected = #"unexpected "!", expected a label name or "}" at position 5 in selector "foo{!}""#
            #expect(error.message == expected)
        }
    }

    @Test func programmaticSelectorsFollowTheSameEmptinessRule() throws {
        let anything = try LabelMatcher(name: "job", kind: .regexMatch, value: ".*")
        #expect(throws: SelectorError.self) {
            _ = try SeriesSelector(matchers: [anything])
        }
        let named = try LabelMatcher(name: "__name__", kind: .equal, value: "up")
        #expect(try SeriesSelector(matchers: [named, anything]).matches(name: "up", labels: []))
    }
}
