/// A text format Sextant can serve on `/metrics`.
///
/// See https://prometheus.io/docs/instrumenting/content_negotiation/.
package enum ExpositionFormat: Sendable, Equatable {
    /// Prometheus text format 0.0.4, the fallback for every scraper.
    case text004
    /// OpenMetrics text 1.0.0.
    case openMetrics

    /// The `Content-Type` header value for a response in this format.
    package var contentType: String {
        switch self {
        case .text004: "text/plain; version=0.0.4; charset=utf-8"
        case .openMetrics: "application/openmetrics-text; version=1.0.0; charset=utf-8"
        }
    }

    /// Picks the format the `Accept` header weights highest, falling back to text 0.0.4.
    ///
    /// Ties in weight go to the more specific media range, then to the earlier one in the header.
    package static func negotiate(accept: String?) -> ExpositionFormat {
        guard let accept, !accept.isEmpty else {
            return .text004
        }
        var best: (format: ExpositionFormat, q: Double, specificity: Int)?
        for range in accept.split(separator: ",") {
            guard let candidate = Self.candidate(forMediaRange: range), candidate.q > 0 else {
                continue
            }
            if let current = best {
                let better = candidate.q > current.q
                    || (candidate.q == current.q && candidate.specificity > current.specificity)
                if !better {
                    continue
                }
            }
            best = candidate
        }
        return best?.format ?? .text004
    }

    /// Maps one media range of an `Accept` header to the format it asks for, if we serve it.
    private static func candidate(
        forMediaRange range: Substring
    ) -> (format: ExpositionFormat, q: Double, specificity: Int)? {
        let parts = range.split(separator: ";", omittingEmptySubsequences: false)
        guard let first = parts.first else {
            return nil
        }
        let mediaType = first.trimmingSpaces().lowercased()
        var q = 1.0
        var version: String?
        for parameter in parts.dropFirst() {
            guard let equals = parameter.firstIndex(of: "=") else {
                continue
            }
            let key = parameter[..<equals].trimmingSpaces().lowercased()
            var value = parameter[parameter.index(after: equals)...].trimmingSpaces()
            if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") {
                value = value.dropFirst().dropLast()
            }
            switch key {
            case "q":
                // An unparsable weight makes the range unacceptable rather than preferred.
                q = Double(value).map { min(max($0, 0), 1) } ?? 0
            case "version":
                version = String(value)
            default:
                break
            }
        }
        switch mediaType {
        case "application/openmetrics-text":
            // OpenMetrics says a request without a version means 1.0.0; 0.0.1 is not served.
            guard version == nil || version == "1.0.0" else {
                return nil
            }
            return (.openMetrics, q, 2)
        case "text/plain":
            // text 1.0.0 needs a response carrying an escaping scheme, which we do not produce.
            guard version == nil || version == "0.0.4" else {
                return nil
            }
            return (.text004, q, 2)
        case "application/*":
            return (.openMetrics, q, 1)
        case "text/*":
            return (.text004, q, 1)
        case "*/*":
            return (.text004, q, 0)
        default:
            return nil
        }
    }
}

extension Substring {
    /// The substring without leading and trailing spaces and tabs.
    fileprivate func trimmingSpaces() -> Substring {
        var result = self
        while let first = result.first, first == " " || first == "\t" {
            result = result.dropFirst()
        }
        while let last = result.last, last == " " || last == "\t" {
            result = result.dropLast()
        }
        return result
    }
}
