import AsyncHTTPClient
import Foundation
import NIOCore

/// The HTTP query API of a Prometheus-compatible store (Prometheus, VictoriaMetrics, Thanos,
/// Mimir): instant and range queries whose answers are vectors and matrices of samples.
struct PrometheusAPI: Sendable {
    /// The store's address, without `/api/v1/…` (e.g. `http://127.0.0.1:9090`).
    let baseURL: String
    let bearerToken: String?

    /// Kept for the process's life, as `HTTPClient.shared` is, but taking compressed answers of any
    /// ratio up to 256 MiB: a store's JSON of many alike series compresses far past the shared
    /// client's limit (VictoriaMetrics gzips its answers).
    private static let client: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.decompression = .enabled(limit: .size(256 << 20))
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }()

    init(baseURL: String, bearerToken: String? = nil) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.bearerToken = bearerToken
    }

    /// `GET /api/v1/query`: the vector `promql` gives at `time` (Unix seconds).
    func instant(_ promql: String, at time: Double) async throws -> [PromSample] {
        let answer = try await get("/api/v1/query", ["query": promql, "time": Self.text(time)])
        return answer.result.compactMap { item in
            item.value.map { PromSample(labels: item.metric, value: $0.value) }
        }
    }

    /// `GET /api/v1/query_range`: `promql` evaluated every `step` seconds from `start` to `end`;
    /// each evaluation time's vector.
    func range(_ promql: String, start: Double, end: Double, step: Double) async throws -> [Double: [PromSample]] {
        let answer = try await get(
            "/api/v1/query_range",
            ["query": promql, "start": Self.text(start), "end": Self.text(end), "step": Self.text(step)])
        var byTime: [Double: [PromSample]] = [:]
        for item in answer.result {
            for point in item.values ?? [] {
                byTime[point.time, default: []].append(PromSample(labels: item.metric, value: point.value))
            }
        }
        return byTime
    }

    private func get(_ path: String, _ parameters: [String: String]) async throws -> Answer.Payload {
        var components = URLComponents(string: baseURL + path)
        components?.queryItems = parameters.sorted { $0.key < $1.key }.map { URLQueryItem(name: $0.key, value: $0.value) }
        guard let url = components?.url?.absoluteString else {
            throw QueryError("--query-prometheus '\(baseURL)' is not a URL")
        }
        var request = HTTPClientRequest(url: url)
        if let bearerToken { request.headers.add(name: "Authorization", value: "Bearer \(bearerToken)") }
        let response: HTTPClientResponse
        let body: ByteBuffer
        do {
            response = try await Self.client.execute(request, timeout: .seconds(30))
            body = try await response.body.collect(upTo: 256 << 20)
        } catch {
            throw UpstreamError("the Prometheus API at \(baseURL) did not answer: \(error)")
        }
        let answer: Answer
        do {
            answer = try JSONDecoder().decode(Answer.self, from: Data(buffer: body))
        } catch {
            throw UpstreamError(
                "the Prometheus API at \(baseURL) answered \(response.status.code) with something else than its JSON: "
                    + String(buffer: body).prefix(200))
        }
        guard answer.status == "success", let data = answer.data else {
            throw UpstreamError("the Prometheus API at \(baseURL) refused \(parameters["query"] ?? ""): \(answer.error ?? "no reason given")")
        }
        return data
    }

    private static func text(_ seconds: Double) -> String {
        String(format: "%.3f", seconds)
    }

    /// The API's envelope: `{"status", "data": {"resultType", "result"}, "error"}`.
    private struct Answer: Decodable {
        struct Point: Decodable {
            var time: Double
            var value: Double

            init(from decoder: any Decoder) throws {
                var pair = try decoder.unkeyedContainer()
                time = try pair.decode(Double.self)
                let text = try pair.decode(String.self)
                switch text {
                case "+Inf": value = .infinity
                case "-Inf": value = -.infinity
                default: value = Double(text) ?? .nan
                }
            }
        }

        struct Item: Decodable {
            var metric: [String: String]
            var value: Point?
            var values: [Point]?
        }

        struct Payload: Decodable {
            var result: [Item]
        }

        var status: String
        var data: Payload?
        var error: String?
    }
}

/// The store query mode reads from failed or answered nonsense: a 502 naming it.
struct UpstreamError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
