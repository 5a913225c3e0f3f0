import Testing

@testable import SextantServer

@Suite struct ExpositionFormatTests {
    @Test func prometheus242AcceptHeaderGetsOpenMetrics() {
        let accept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
            + "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
        #expect(ExpositionFormat.negotiate(accept: accept) == .openMetrics)
    }

    @Test func prometheus3AcceptHeaderGetsOpenMetrics() {
        let accept = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,"
            + "application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,"
            + "text/plain;version=0.0.4;q=0.2,*/*;q=0.1"
        #expect(ExpositionFormat.negotiate(accept: accept) == .openMetrics)
    }

    @Test func protobufFirstHeaderFallsThroughToOpenMetrics() {
        let accept = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited,"
            + "application/openmetrics-text;version=1.0.0;q=0.8,text/plain;version=0.0.4;q=0.3,*/*;q=0.1"
        #expect(ExpositionFormat.negotiate(accept: accept) == .openMetrics)
    }

    @Test(arguments: [
        nil, "", "*/*", "text/plain", "text/plain;version=0.0.4", "text/*", "application/json",
        "application/openmetrics-text;version=0.0.1",
        "application/openmetrics-text;version=1.0.0;q=0.2,text/plain;version=0.0.4;q=0.9",
        "application/openmetrics-text;version=1.0.0;q=0,*/*;q=0.1",
        "application/openmetrics-text;q=abc,text/plain;q=0.1",
        "text/plain;version=0.0.4,application/openmetrics-text;version=1.0.0",
    ] as [String?])
    func otherHeadersGetText004(accept: String?) {
        #expect(ExpositionFormat.negotiate(accept: accept) == .text004)
    }

    @Test(arguments: [
        "application/openmetrics-text",
        "Application/OpenMetrics-Text; Version=\"1.0.0\"; charset=utf-8",
        "*/*,application/openmetrics-text;version=1.0.0",
        "text/plain;q=0.5, application/openmetrics-text;version=1.0.0;q=0.6",
        "application/*",
    ])
    func openMetricsIsChosenWhenItWeighsMost(accept: String) {
        #expect(ExpositionFormat.negotiate(accept: accept) == .openMetrics)
    }

    @Test func contentTypesCarryVersionAndCharset() {
        #expect(ExpositionFormat.text004.contentType == "text/plain; version=0.0.4; charset=utf-8")
        #expect(
            ExpositionFormat.openMetrics.contentType == "application/openmetrics-text; version=1.0.0; charset=utf-8"
        )
    }
}
