import CSnappy
import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import SextantServer
import SextantWire
import SwiftProtobuf
import Testing

private func snappy(_ bytes: [UInt8]) -> [UInt8] {
    var length = snappy_max_compressed_length(bytes.count)
    var out = [UInt8](repeating: 0, count: length)
    bytes.withUnsafeBufferPointer { input in
        out.withUnsafeMutableBufferPointer { output in
            input.baseAddress!.withMemoryRebound(to: CChar.self, capacity: input.count) { i in
                output.baseAddress!.withMemoryRebound(to: CChar.self, capacity: output.count) { o in
                    _ = snappy_compress(i, input.count, o, &length)
                }
            }
        }
    }
    return Array(out.prefix(length))
}

private func writeRequest(name: String, job: String, samples: [(Double, Int64)]) throws -> [UInt8] {
    var series = Prometheus_TimeSeries()
    series.labels = [("__name__", name), ("job", job)].map {
        var l = Prometheus_Label()
        l.name = $0.0
        l.value = $0.1
        return l
    }
    series.samples = samples.map {
        var s = Prometheus_Sample()
        s.value = $0.0
        s.timestamp = $0.1
        return s
    }
    var request = Prometheus_WriteRequest()
    request.timeseries = [series]
    return snappy(try request.serializedBytes())
}

@Suite struct MetricsRoutesTests {
    @Test func theWritersCommitsBusyTimeAndRecordsPerCommitAreExposed() async throws {
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        try await withCollector { collector in
            try await Application(router: collector.apiRouter).test(.router) { client in
                let body = try writeRequest(name: "up", job: "api", samples: [(1, now - 10_000), (1, now)])
                try await client.execute(
                    uri: "/api/v1/write", method: .post,
                    headers: [.contentType: "application/x-protobuf", .contentEncoding: "snappy"],
                    body: ByteBuffer(bytes: body)
                ) { #expect($0.status == .noContent) }
                try await client.execute(uri: "/metrics", method: .get) { response in
                    let text = String(buffer: response.body)
                    #expect(text.contains("# TYPE sextant_ingest_commits_total counter\nsextant_ingest_commits_total 1\n"))
                    #expect(text.contains("# TYPE sextant_ingest_writer_busy_seconds_total counter"))
                    #expect(!text.contains("sextant_ingest_writer_busy_seconds_total 0\n"))
                    #expect(text.contains("# TYPE sextant_ingest_commit_records histogram"))
                    #expect(text.contains(#"sextant_ingest_commit_records_bucket{le="1"} 0"#))
                    #expect(text.contains(#"sextant_ingest_commit_records_bucket{le="10"} 1"#))
                    #expect(text.contains(#"sextant_ingest_commit_records_bucket{le="+Inf"} 1"#))
                    #expect(text.contains("sextant_ingest_commit_records_sum 2\nsextant_ingest_commit_records_count 1\n"))
                    #expect(text.contains("sextant_ingest_queue_records 0\n"))
                    #expect(text.contains("sextant_ingest_queue_bytes 0\n"))
                }
            }
        }
    }

    @Test func remoteWriteSeriesComeBackThroughSeriesQueryRangeAndFederation() async throws {
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        try await withCollector { collector in
            try await Application(router: collector.apiRouter).test(.router) { client in
                let body = try writeRequest(
                    name: "http_requests_total", job: "api", samples: [(1, now - 20_000), (5, now - 10_000), (9, now)])
                try await client.execute(
                    uri: "/api/v1/write", method: .post,
                    headers: [.contentType: "application/x-protobuf", .contentEncoding: "snappy"],
                    body: ByteBuffer(bytes: body)
                ) { #expect($0.status == .noContent) }
                try await client.execute(uri: "/api/v1/series?match[]=http_requests_total", method: .get) { response in
                    #expect(String(buffer: response.body) == #"{"data":[{"__name__":"http_requests_total","job":"api"}],"status":"success"}"#)
                }
                let start = Double(now - 20_000) / 1000
                try await client.execute(
                    uri: "/api/v1/query_range?match=http_requests_total%7Bjob%3D%22api%22%7D&start=\(start)&end=\(Double(now) / 1000)",
                    method: .get
                ) { response in
                    let text = String(buffer: response.body)
                    #expect(text.contains(#""values":[["#))
                    #expect(text.contains(#""9"]]"#))
                }
                try await client.execute(uri: "/federate?match%5B%5D=%7Bjob%3D%22api%22%7D", method: .get) { response in
                    let text = String(buffer: response.body)
                    #expect(text.contains("# TYPE http_requests_total untyped"))
                    #expect(text.contains(#"http_requests_total{job="api"} 9 \#(now)"#))
                }
                try await client.execute(
                    uri: "/api/v1/write", method: .post,
                    headers: [.contentType: "application/x-protobuf", .contentEncoding: "snappy"],
                    body: ByteBuffer(bytes: [0x0A, 0xFF, 0xFF, 0xFF])
                ) { #expect($0.status == .badRequest) }
                try await client.execute(uri: "/api/v1/query_range?match=%7B%7D", method: .get) {
                    #expect($0.status == .badRequest)
                }
            }
        }
    }
}
