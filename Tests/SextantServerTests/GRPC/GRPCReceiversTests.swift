import Foundation
import GRPCCore
import GRPCInProcessTransport
import Hummingbird
import HummingbirdTesting
import NIOCore
import SextantFixtures
import SextantServer
import SextantWire
import SwiftProtobuf
import Testing

/// Runs the collector's gRPC services on an in-process transport.
func withGRPC(_ collector: Collector, _ body: (GRPCClient<InProcessTransport.Client>) async throws -> Void)
    async throws
{
    let transport = InProcessTransport()
    let server = GRPCServer(
        transport: transport.server, services: collector.grpcServices, interceptors: collector.grpcInterceptors)
    let client = GRPCClient(transport: transport.client)
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await server.serve() }
        group.addTask { try await client.runConnections() }
        try await body(client)
        client.beginGracefulShutdown()
        server.beginGracefulShutdown()
        try await group.waitForAll()
    }
}

func alsMessages(_ workload: String) throws -> [Envoy_Service_Accesslog_V3_StreamAccessLogsMessage] {
    try Fixtures.files(in: "envoy/als/\(workload)", suffix: ".pb").map {
        try Envoy_Service_Accesslog_V3_StreamAccessLogsMessage(serializedBytes: Fixtures.bytes($0))
    }
}

@Suite struct GRPCReceiversTests {
    @Test func accessLogStreamsFeedTheGraph() async throws {
        try await withCollector { collector in
            try await withGRPC(collector) { client in
                let als = Envoy_Service_Accesslog_V3_AccessLogService.Client(wrapping: client)
                for workload in ["productpage-v1", "ratings-v1"] {
                    let messages = try alsMessages(workload)
                    _ = try await als.streamAccessLogs(requestProducer: { writer in
                        for message in messages { try await writer.write(message) }
                    })
                }
                // A stream whose first message does not name its proxy is refused, alone.
                var unnamed = try alsMessages("ratings-v1")[1]
                unnamed.clearIdentifier()
                let anonymous = unnamed
                await #expect {
                    _ = try await als.streamAccessLogs(requestProducer: { writer in try await writer.write(anonymous) })
                } throws: { ($0 as? RPCError)?.code == .invalidArgument }
            }
            try await Application(router: collector.apiRouter).test(.router) { client in
                try await client.execute(uri: "/api/v1/graph?window=100000d", method: .get) { response in
                    let graph = try JSONDecoder().decode(GraphJSON.self, from: Data(buffer: response.body))
                    let edges = Dictionary(uniqueKeysWithValues: graph.edges.map { ("\($0.source)->\($0.target)", $0) })
                    #expect(edges["unknown->workload:default:productpage-v1"]?.requests == 50)
                    #expect(edges["unknown->workload:default:ratings-v1"]?.requests == 33)
                    #expect(edges["unknown->workload:default:ratings-v1"]?.serverErrors == 3)
                    // The callees of productpage did not report: their service stands in.
                    #expect(edges["workload:default:productpage-v1->service:reviews.default.svc.cluster.local"]?.requests == 49)
                    #expect(graph.edges.allSatisfy { $0.sources == ["als"] })
                }
            }
        }
    }

    @Test func traceExportsAnswerPartialSuccessForBadSpans() async throws {
        try await withCollector { collector in
            try await withGRPC(collector) { client in
                let traces = Opentelemetry_Proto_Collector_Trace_V1_TraceService.Client(wrapping: client)
                var request = try Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest(
                    serializedBytes: Fixtures.bytes("envoy/otlp/traces/export-001.pb"))
                let good = try await traces.export(request)
                #expect(!good.hasPartialSuccess)
                request.resourceSpans[0].scopeSpans[0].spans[0].spanID = Data()
                let partial = try await traces.export(request)
                #expect(partial.partialSuccess.rejectedSpans == 1)
                #expect(partial.partialSuccess.errorMessage.contains("span_id must be 8 bytes"))
                let logs = Opentelemetry_Proto_Collector_Logs_V1_LogsService.Client(wrapping: client)
                let logRequest = try Opentelemetry_Proto_Collector_Logs_V1_ExportLogsServiceRequest(
                    serializedBytes: Fixtures.bytes("envoy/otlp/logs/export-001.pb"))
                #expect(!(try await logs.export(logRequest)).hasPartialSuccess)
            }
        }
    }
}
