import Foundation
import Hummingbird
import SextantModel
import SextantStore

/// `/api/v1/series` and `/api/v1/query_range` over ingested metric series.
struct SeriesController: Sendable {
    let database: SextantDatabase

    func addRoutes(to group: RouterGroup<some RequestContext>) {
        group.get("/api/v1/series", use: series)
        group.get("/api/v1/query_range", use: queryRange)
    }

    /// `GET /api/v1/series?match[]=<selector>...`: label sets of the matching series.
    func series(_ request: Request, _ context: some RequestContext) async throws -> Response {
        let selectors = try Self.selectors(request, parameter: "match[]", required: true)
        let matching = Self.matching(selectors, in: database.metricHead.view())
        let data = matching
            .map { s in ["__name__": s.name].merging(s.labels.map { ($0.name, $0.value) }) { a, _ in a } }
            .sorted { ($0["__name__"] ?? "", $0.description) < ($1["__name__"] ?? "", $1.description) }
        return try JSONResponse.make(SeriesAnswer(status: "success", data: data))
    }

    /// `GET /api/v1/query_range?match=<selector>&start=<s>&end=<s>&step=<duration>`: each matching
    /// series' samples in the range; with `step`, the newest sample at or before each step (as
    /// Prometheus evaluates a plain selector, with a 5-minute lookback).
    func queryRange(_ request: Request, _ context: some RequestContext) async throws -> Response {
        let query = request.uri.queryParameters
        let selectors = try Self.selectors(request, parameter: "match", required: true)
        let now = database.clock.nowSeconds
        let end = try Self.seconds(query["end"], name: "end") ?? now
        let start = try Self.seconds(query["start"], name: "start") ?? (end - 3600)
        guard start <= end else { throw QueryError("start must not be after end") }
        var step: Double?
        if let text = query["step"] {
            guard let s = DurationText.seconds(String(text)), s > 0 else {
                throw QueryError("step '\(text.prefix(40))' is not a duration such as 15s or 1m")
            }
            guard (end - start) / s <= 11_000 else { throw QueryError("too many steps: raise step or shorten the range") }
            step = s
        }
        // A plain selector looks back 5 minutes; over hours whose samples retention rolled
        // up, the hour's newest sample answers for the hour after it.
        let lookback = 300.0
        let hourLookback = Double(MetricHead.rollupTier)
        let matching = Self.matching(selectors, in: database.metricHead.view())
        guard matching.count <= 10_000 else { throw QueryError("\(matching.count) series match: narrow the selector") }
        let ids = matching.map(\.id)
        let toMs = Int64(end * 1000)
        let samples = try await database.samples(seriesIDs: ids, fromMs: Int64((start - (step == nil ? 0 : lookback)) * 1000), toMs: toMs)
        let hourly =
            step == nil ? [:] : try await database.hourlySamples(seriesIDs: ids, fromMs: Int64((start - hourLookback) * 1000), toMs: toMs)
        var result: [RangeSeries] = []
        for series in matching {
            let points = samples[series.id] ?? []
            var values: [[RangeValue]] = []
            if let step {
                let hours = hourly[series.id] ?? []
                var index = 0
                var hourIndex = 0
                var t = start
                var last: (Int64, Double)?
                var lastHour: (Int64, Double)?
                while t <= end + 1e-9 {
                    let limit = Int64(t * 1000)
                    while index < points.count, points[index].0 <= limit {
                        last = points[index]
                        index += 1
                    }
                    while hourIndex < hours.count, hours[hourIndex].0 <= limit {
                        lastHour = hours[hourIndex]
                        hourIndex += 1
                    }
                    if let last, Double(limit - last.0) <= lookback * 1000 {
                        values.append([.time(t), .value(last.1)])
                    } else if let lastHour, Double(limit - lastHour.0) <= hourLookback * 1000 {
                        values.append([.time(t), .value(lastHour.1)])
                    }
                    t += step
                }
            } else {
                values = points.filter { Double($0.0) >= start * 1000 }.map { [.time(Double($0.0) / 1000), .value($0.1)] }
            }
            guard !values.isEmpty else { continue }
            let metric = ["__name__": series.name].merging(series.labels.map { ($0.name, $0.value) }) { a, _ in a }
            result.append(RangeSeries(metric: metric, values: values))
        }
        return try JSONResponse.make(
            RangeAnswer(status: "success", data: .init(resultType: "matrix", result: result)))
    }

    /// The stored series the selectors pick, found through the head's postings.
    static func matching(_ selectors: [SeriesSelector], in view: MetricHeadView) -> [StoredSeries] {
        view.selected(by: selectors).map(view.stored)
    }

    /// The selectors given in a (possibly percent-encoded) repeated parameter.
    static func selectors(_ request: Request, parameter: String, required: Bool) throws -> [SeriesSelector] {
        let texts = request.uri.queryParameters
            .filter { String($0.key).removingPercentEncoding == parameter }
            .map { String($0.value) }
        if required, texts.isEmpty { throw QueryError("at least one \(parameter) selector is required") }
        var selectors: [SeriesSelector] = []
        for text in texts {
            do {
                selectors.append(try SeriesSelector(parsing: text))
            } catch {
                throw QueryError("\(parameter) '\(text.prefix(200))': \(error.message)")
            }
        }
        return selectors
    }

    private static func seconds(_ text: Substring?, name: String) throws -> Double? {
        guard let text else { return nil }
        guard let value = Double(text), value.isFinite, value >= 0, value <= QueryWindow.maxSeconds else {
            throw QueryError("\(name) '\(text.prefix(40))' is not a Unix time in seconds")
        }
        return value
    }

    private struct SeriesAnswer: Encodable {
        var status: String
        var data: [[String: String]]
    }

    /// Prometheus' `[time, "value"]` pairs.
    enum RangeValue: Encodable {
        case time(Double)
        case value(Double)

        func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            switch self {
            case .time(let t): try container.encode(t)
            case .value(let v): try container.encode(ExpositionEncoder.formatFloat(v))
            }
        }
    }

    struct RangeSeries: Encodable {
        var metric: [String: String]
        var values: [[RangeValue]]
    }

    private struct RangeAnswer: Encodable {
        struct Data: Encodable {
            var resultType: String
            var result: [RangeSeries]
        }

        var status: String
        var data: Data
    }
}
