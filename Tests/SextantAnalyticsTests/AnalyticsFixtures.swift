import SextantAnalytics
import SextantModel

/// A corner of Bookinfo and a way to make the aggregates the analytics read.
let productpage = WorkloadIdentity(namespace: "default", workload: "productpage-v1", app: "productpage", version: "v1")
let reviews2 = WorkloadIdentity(namespace: "default", workload: "reviews-v2", app: "reviews", version: "v2")
let reviews = ServiceRef(host: "reviews.default.svc.cluster.local", name: "reviews", namespace: "default")
let productpageService = ServiceRef(
    host: "productpage.default.svc.cluster.local", name: "productpage", namespace: "default")

func aggregate(
    _ reporter: Reporter, proxy: WorkloadIdentity, peer: WorkloadIdentity?, service: ServiceRef, code: Int = 200,
    paired: Bool, count: Int, millis: Int64 = 10, sources: IngestChannel = .spans
) -> CallAggregate {
    CallAggregate(
        reporter: reporter, proxy: proxy, peer: peer, service: service, requestProtocol: .http, responseCode: code,
        grpcStatus: nil, responseFlags: "-", paired: paired,
        latency: LatencySketch(
            index: LatencySketch.index(micros: millis * 1000), count: count, sumMicros: Double(millis * 1000) * Double(count)),
        sources: sources, count: count, durationMicrosSum: millis * 1000 * Int64(count), requestBytes: 0,
        responseBytes: 100 * Int64(count))
}
