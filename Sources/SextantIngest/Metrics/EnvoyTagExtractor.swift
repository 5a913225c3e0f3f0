internal import Foundation
package import SextantModel

/// Envoy's tag extraction: turns an untagged stat name (`cluster.outbound|9080||ratings.default.svc.cluster.local.upstream_rq_500`)
/// into a tag-extracted name and tags (`cluster.upstream_rq` with `cluster_name`, `response_code`),
/// so statsd series match what `/stats/prometheus` shows.
///
/// Each rule is a regular expression whose first capture group is cut from the name and whose
/// second is the tag's value, applied in order, as Envoy applies `stats_tags`. The default rules
/// are the ones Istio's bootstrap configures.
package struct EnvoyTagExtractor: Sendable {
    package struct Rule: Sendable {
        package var tag: String
        package var pattern: String

        package init(tag: String, pattern: String) {
            self.tag = tag
            self.pattern = pattern
        }
    }

    /// Istio's sidecar `stats_tags` (plus Envoy's listener and HTTP prefixes they rely on).
    package static let istioRules: [Rule] = [
        Rule(tag: "cluster_name", pattern: #"^cluster\.((.+?(\..+?\.svc\.cluster\.local)?)\.)"#),
        Rule(tag: "tcp_prefix", pattern: #"^tcp\.((.*?)\.)\w+?$"#),
        Rule(tag: "response_code", pattern: #"_rq(_(\d{3}))$"#),
        Rule(tag: "response_code_class", pattern: #"_rq(_(\dxx))$"#),
        Rule(
            tag: "http_conn_manager_listener_prefix",
            pattern: #"^listener(?=\.).*?\.http\.(((?:inbound|outbound)_\d+\.\d+\.\d+\.\d+_\d+|[^.]+)\.)"#),
        Rule(
            tag: "http_conn_manager_prefix",
            pattern: #"^http\.(((?:inbound|outbound)_\d+\.\d+\.\d+\.\d+_\d+|[^.]+)\.)"#),
        Rule(tag: "listener_address", pattern: #"^listener\.(((?:[_.[:digit:]]*|[_\[\]aAbBcCdDeEfF[:digit:]]*))\.)"#),
    ]

    private struct Compiled: @unchecked Sendable {
        // NSRegularExpression is immutable after creation and documented thread-safe for matching.
        let tag: String
        let regex: NSRegularExpression
    }

    private let rules: [Compiled]

    package init(rules: [Rule] = EnvoyTagExtractor.istioRules) {
        self.rules = rules.compactMap { rule in
            (try? NSRegularExpression(pattern: rule.pattern)).map { Compiled(tag: rule.tag, regex: $0) }
        }
    }

    /// The tag-extracted name and the tags.
    package func extract(_ stat: String) -> (name: String, tags: [MetricLabelPair]) {
        var name = stat
        var tags: [MetricLabelPair] = []
        for rule in rules {
            let ns = name as NSString
            guard let match = rule.regex.firstMatch(in: name, range: NSRange(location: 0, length: ns.length)),
                match.numberOfRanges >= 3
            else { continue }
            let cut = match.range(at: 1)
            let value = match.range(at: 2)
            guard cut.location != NSNotFound, value.location != NSNotFound else { continue }
            tags.append(MetricLabelPair(rule.tag, ns.substring(with: value)))
            name = ns.replacingCharacters(in: cut, with: "")
        }
        return (name, tags)
    }
}
