import SextantFixtures
import SextantIngest
import SextantModel
import Testing

@Suite struct ZipkinV2DecoderTests {
    @Test func decodesEveryEnvoyFixtureBatch() throws {
        var spans: [Span] = []
        var requests: [CallReport] = []
        for file in try Fixtures.files(in: "envoy/zipkin", suffix: ".json") {
            let batch = try ZipkinV2Decoder().decode(json: Fixtures.bytes(file))
            #expect(batch.rejected.isEmpty, "\(file): \(batch.rejected)")
            spans += batch.spans
            requests += batch.requests
        }
        #expect(spans.count == 312)
        #expect(requests.count == 312)
        #expect(spans.filter { $0.kind == .server }.count == 50 + 49 + 49 + 33)
        #expect(requests.filter { $0.reporter == .source }.count == 49 + 49 + 33)
        #expect(requests.filter { $0.responseCode == 500 }.count == 6)
    }

    @Test func mapsAnEnvoyClientSpanToAnOutboundCall() throws {
        let batch = try ZipkinV2Decoder().decode(json: Fixtures.bytes("envoy/zipkin/batch-001.json"))
        let call = try #require(batch.requests.first { $0.reporter == .source && $0.service.name == "details" })
        #expect(call.proxy.workload == "productpage-v1")
        #expect(call.proxy.cluster == "Kubernetes")
        #expect(call.service.host == "details.default.svc.cluster.local")
        #expect(call.responseCode == 200)
        #expect(call.requestID == "1b159640-2d42-98dd-b1bd-7176d764c081")
        #expect(call.durationMicros == 9344)
        #expect(call.spanID == "e484d46d587143c1")
        #expect(call.parentSpanID == "15f7aa6903dd9b74")
        #expect(call.securityPolicy == "unknown")
    }

    @Test func mapsAnEnvoyServerSpanToAnInboundCallForItsOwnService() throws {
        let batch = try ZipkinV2Decoder().decode(json: Fixtures.bytes("envoy/zipkin/batch-001.json"))
        let call = try #require(batch.requests.first { $0.reporter == .destination })
        #expect(call.proxy.workload == "productpage-v1")
        #expect(call.service.host == "productpage.default.svc.cluster.local")
        #expect(call.peer == nil)
        #expect(call.securityPolicy == "none")
    }

    @Test func keepsValidSpansAndNamesWhatIsWrongWithTheOthers() throws {
        let body = """
            [{"traceId":"a1","id":"00000000000000b2","timestamp":1795706850714252,"duration":5,"name":"GET"},
             {"id":"00000000000000b3","timestamp":1795706850714252},
             {"traceId":"zz","id":"00000000000000b4","timestamp":1795706850714252},
             {"traceId":"a1","id":"00000000000000b5","timestamp":1795706850714252,"duration":-3},
             {"traceId":"a1","id":"00000000000000b6","timestamp":"yesterday"},
             {"traceId":"a1","id":"00000000000000b7","timestamp":1795706850714252,"kind":"SIDEWAYS"}]
            """
        let batch = try ZipkinV2Decoder().decode(json: Array(body.utf8))
        #expect(batch.spans.count == 1)
        #expect(batch.spans.first?.traceID == "00000000000000a1")
        #expect(batch.spans.first?.name == "get")
        let messages = batch.rejected.map(\.description)
        #expect(messages.count == 5)
        #expect(messages[0] == "span[1]: missing 'traceId'")
        #expect(messages[1].contains("'traceId' must be 16 or 32 hex characters"))
        #expect(messages[2].contains("'duration' must not be negative"))
        #expect(messages[3].contains("'timestamp'"))
        #expect(messages[4].contains("'kind' must be"))
    }

    @Test func rejectsABodyThatIsNotAJSONArray() {
        #expect(throws: DecodeError.self) { try ZipkinV2Decoder().decode(json: Array("{\"traceId\":1}".utf8)) }
        #expect(throws: DecodeError.self) { try ZipkinV2Decoder().decode(json: Array("[{\"traceId\":".utf8)) }
    }

    @Test func acceptsAnEmptyBody() throws {
        #expect(try ZipkinV2Decoder().decode(json: []).recordCount == 0)
        #expect(try ZipkinV2Decoder().decode(json: Array("[]".utf8)).recordCount == 0)
    }
}
