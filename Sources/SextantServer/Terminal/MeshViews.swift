/// The query API's JSON answers as the terminal commands read them (`sextant graph`, `top`,
/// `signals`, `diff`, `traces`): from a running server or from `LocalQueries`.
package enum MeshViews {
    package struct Latency: Decodable, Sendable {
        package var p50: Double
        package var p90: Double
        package var p99: Double
    }

    package struct Graph: Decodable, Sendable {
        package struct Node: Decodable, Sendable {
            package var id: String
            package var type: String
            package var namespace: String
        }

        package struct Edge: Decodable, Sendable {
            package var source: String
            package var target: String
            package var `protocol`: String
            package var requests: Int
            package var errors: Int
            package var serverErrors: Int
            package var byCode: [String: Int]
            package var rps: Double
            package var errorRate: Double
            package var latencyMs: Latency?
            package var sources: [String]
        }

        package var graphType: String
        package var windowSeconds: Double
        package var nodes: [Node]
        package var edges: [Edge]
    }

    package struct Signals: Decodable, Sendable {
        package struct Item: Decodable, Sendable {
            package struct Saturation: Decodable, Sendable {
                package var inFlight: Double
                package var overflowRequests: Int
                package var rateLimitedRequests: Int
            }

            package var name: String
            package var namespace: String
            package var requests: Int
            package var rps: Double
            package var errors: Int
            package var serverErrors: Int
            package var errorRate: Double
            package var latencyMs: Latency?
            package var saturation: Saturation
        }

        package var by: String
        package var windowSeconds: Double
        package var items: [Item]
    }

    package struct Diff: Decodable, Sendable {
        package struct Change: Decodable, Sendable {
            package var kind: String
            package var description: String
        }

        package struct Item: Decodable, Sendable {
            package var source: String?
            package var target: String?
            package var id: String?
            package var score: Double
            package var changes: [Change]
        }

        package struct Window: Decodable, Sendable {
            package var startUnixSeconds: Double
            package var endUnixSeconds: Double
        }

        package var current: Window
        package var baseline: Window
        package var edges: [Item]
        package var nodes: [Item]
    }

    package struct Traces: Decodable, Sendable {
        package struct Trace: Decodable, Sendable {
            package var traceId: String
            package var startUnixMicros: Int64
            package var durationMicros: Int64
            package var rootService: String
            package var rootName: String
            package var spanCount: Int
            package var errorCount: Int
            package var services: [String]
        }

        package var traces: [Trace]
    }
}
