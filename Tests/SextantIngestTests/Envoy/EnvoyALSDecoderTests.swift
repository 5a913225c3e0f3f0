import Foundation
import SextantFixtures
import SextantIngest
import SextantModel
import SextantWire
import Testing

/// Decodes one sidecar's recorded ALS stream the way the gRPC service does: the identity comes
/// from the first message and is kept for the others.
func decodeALSStream(_ workload: String) throws -> (proxy: WorkloadIdentity, batch: IngestBatch) {
    var proxy: WorkloadIdentity?
    var batch = IngestBatch()
    for file in try Fixtures.files(in: "envoy/als/\(workload)", suffix: ".pb") {
        let bytes = try Fixtures.bytes(file)
        if let identifier = try EnvoyALSDecoder().identifier(protobuf: bytes) { proxy = identifier.node.workloadIdentity }
        batch.append(contentsOf: try EnvoyALSDecoder().decode(protobuf: bytes, proxy: try #require(proxy)))
    }
    return (try #require(proxy), batch)
}

@Suite struct EnvoyALSDecoderTests {
    @Test func namesTheProxyFromIstioNodeMetadata() throws {
        let (proxy, _) = try decodeALSStream("productpage-v1")
        #expect(proxy.workload == "productpage-v1")
        #expect(proxy.namespace == "default")
        #expect(proxy.app == "productpage")
        #expect(proxy.version == "v1")
        #expect(proxy.canonicalService == "productpage")
        #expect(proxy.canonicalRevision == "v1")
        #expect(proxy.cluster == "Kubernetes")
    }

    @Test func decodesEveryEntryOfTheRecordedStreams() throws {
        let (_, productpage) = try decodeALSStream("productpage-v1")
        #expect(productpage.rejected.isEmpty)
        #expect(productpage.requests.count == 148)
        #expect(productpage.requests.filter { $0.reporter == .destination }.count == 50)
        #expect(productpage.requests.filter { $0.responseCode == 404 }.count == 1)
        let (_, ratings) = try decodeALSStream("ratings-v1")
        #expect(ratings.requests.count == 33)
        #expect(ratings.requests.filter { $0.responseCode == 500 }.count == 3)
        #expect(ratings.requests.allSatisfy { $0.reporter == .destination && $0.channel == .als })
    }

    @Test func namesAStreamsProxyOnceAndAlikeForEveryStream() throws {
        for workload in ["productpage-v1", "ratings-v1"] {
            let first = try Fixtures.files(in: "envoy/als/\(workload)", suffix: ".pb")[0]
            let bytes = try Fixtures.bytes(first)
            let identifier = try #require(try EnvoyALSDecoder().identifier(protobuf: bytes))
            for _ in 0..<2 {
                let sender = try #require(try EnvoyALSDecoder().streamProxy(protobuf: bytes))
                #expect(sender.nodeID == identifier.node.id)
                #expect(sender.identity == identifier.node.workloadIdentity)
            }
        }
        // A broken identifier is refused the same way each time it comes.
        let broken: [UInt8] = [0x0A, 0x02, 0x0A, 0x05]
        for _ in 0..<2 {
            let error = #expect(throws: DecodeError.self) { try EnvoyALSDecoder().streamProxy(protobuf: broken) }
            #expect(error?.message.hasPrefix("body is not a protobuf envoy.service.accesslog.v3.StreamAccessLogsMessage: identifier:") == true)
        }
        #expect(try EnvoyALSDecoder().streamProxy(protobuf: []) == nil)
    }

    @Test func readsAnOutboundEntryLikeTheFileLogDoes() throws {
        let (_, batch) = try decodeALSStream("productpage-v1")
        let call = try #require(batch.requests.first { $0.reporter == .source && $0.service.name == "reviews" })
        #expect(call.service.host == "reviews.default.svc.cluster.local")
        #expect(call.requestID != nil)
        #expect(call.traceID != nil)
        #expect(call.remoteAddress?.hasPrefix("127.0.0.1:") == true)
        #expect(call.responseFlags == "-")
    }

    @Test func spellsResponseFlagsAsEnvoyDoes() throws {
        var flags = Envoy_Data_Accesslog_V3_ResponseFlags()
        flags.noHealthyUpstream = true
        flags.upstreamRetryLimitExceeded = true
        var entry = Envoy_Data_Accesslog_V3_HTTPAccessLogEntry()
        entry.commonProperties.responseFlags = flags
        entry.commonProperties.startTime = .init(seconds: 1_795_706_850, nanos: 0)
        entry.commonProperties.upstreamCluster = "outbound|9080||ratings.default.svc.cluster.local"
        entry.response.responseCode = .init(503)
        var message = Envoy_Service_Accesslog_V3_StreamAccessLogsMessage()
        message.httpLogs.logEntry = [entry]
        let batch = try EnvoyALSDecoder().decode(protobuf: message.serializedBytes(), proxy: .unknown)
        #expect(batch.requests.first?.responseFlags == "UH,URX")
        #expect(batch.requests.first?.responseCode == 503)
    }

    @Test func turnsTCPEntriesIntoConnections() throws {
        var entry = Envoy_Data_Accesslog_V3_TCPAccessLogEntry()
        entry.commonProperties.startTime = .init(seconds: 1_795_706_850, nanos: 0)
        entry.commonProperties.duration = .init(seconds: 2, nanos: 0)
        entry.commonProperties.upstreamCluster = "inbound|27017||"
        entry.connectionProperties.receivedBytes = 120
        entry.connectionProperties.sentBytes = 4096
        var periodic = entry
        periodic.commonProperties.accessLogType = .tcpPeriodic
        var message = Envoy_Service_Accesslog_V3_StreamAccessLogsMessage()
        message.tcpLogs.logEntry = [entry, periodic]
        let proxy = WorkloadIdentity(namespace: "default", workload: "mongodb-v1")
        let batch = try EnvoyALSDecoder().decode(protobuf: message.serializedBytes(), proxy: proxy)
        #expect(batch.connections.count == 1)
        #expect(batch.connections.first?.reporter == .destination)
        #expect(batch.connections.first?.receivedBytes == 120)
        #expect(batch.connections.first?.sentBytes == 4096)
        #expect(batch.connections.first?.durationMicros == 2_000_000)
        #expect(batch.connections.first?.service.host == "mongodb-v1.default.svc.cluster.local")
    }
}
