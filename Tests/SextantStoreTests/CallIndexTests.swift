import SextantModel
@testable import SextantStore
import Testing

@Suite struct CallIndexTests {
    private let second: Int64 = 1_000_000

    @Test func findsACallByKeyAndItsOtherSideByLink() {
        var index = CallIndex(windowMicros: 60 * second, capacity: 100)
        let client = CallIndex.Link.links(
            reporter: .source, serviceID: 7, requestID: "r-1", traceID: "t", spanID: "a", parentSpanID: nil)
        index.insert(key: 11, rowID: 1, links: client, atMicros: 0)
        #expect(index.row(forKey: 11) == 1)
        #expect(index.row(forKey: 12) == nil)
        // The server span whose parent is the client span finds it, by span and by request id.
        let wanted = CallIndex.Link.partnerLinks(
            reporter: .destination, serviceID: 7, requestID: "r-1", traceID: "t", spanID: "b", parentSpanID: "a")
        #expect(index.rows(linkedBy: wanted.spans) == [1])
        #expect(index.rows(linkedBy: wanted.requests) == [1])
        // Another service's report of the same request id, or another trace, does not.
        let elsewhere = CallIndex.Link.partnerLinks(
            reporter: .destination, serviceID: 8, requestID: "r-1", traceID: "u", spanID: "b", parentSpanID: "a")
        #expect(index.rows(linkedBy: elsewhere.spans + elsewhere.requests).isEmpty)
    }

    @Test func forgetsCallsPastTheWindowAndPastTheCapacity() {
        var index = CallIndex(windowMicros: 10 * second, capacity: 3)
        for i in 0..<3 {
            index.insert(
                key: Int64(100 + i), rowID: Int64(i),
                links: [.request(id: "r-\(i)", serviceID: 1, reporter: .source)], atMicros: Int64(i) * second)
        }
        #expect(index.count == 3)
        // A fourth call pushes out the oldest.
        index.insert(key: 103, rowID: 3, links: [], atMicros: 3 * second)
        #expect(index.row(forKey: 100) == nil)
        #expect(index.rows(linkedBy: [.request(id: "r-0", serviceID: 1, reporter: .source)]).isEmpty)
        #expect(index.row(forKey: 101) == 1)
        // Past the window, every call older than it goes.
        index.expire(atMicros: 12 * second)
        #expect(index.row(forKey: 101) == nil)
        #expect(index.row(forKey: 102) == 2)
        #expect(index.count == 2)
        #expect(index.rows(linkedBy: [.request(id: "r-2", serviceID: 1, reporter: .source)]) == [2])
    }

    @Test func linksAddedByAMergedReportGoWithTheCall() {
        var index = CallIndex(windowMicros: 10 * second, capacity: 10)
        index.insert(key: 1, rowID: 1, links: [], atMicros: 0)
        let link = CallIndex.Link.request(id: "r", serviceID: 1, reporter: .destination)
        index.addLinks([link], rowID: 1)
        index.addLinks([link], rowID: 1)
        #expect(index.rows(linkedBy: [link]) == [1])
        index.expire(atMicros: 11 * second)
        #expect(index.rows(linkedBy: [link]).isEmpty)
        #expect(index.count == 0)
    }
}
