import SextantModel

/// One round of simulated Bookinfo traffic, as the sidecars of the fixtures' mesh report it
/// (Tests/Fixtures/envoy/topology.json): each driver request goes to productpage, which calls
/// details and one of reviews v1/v2/v3, which (v2, v3) call ratings. Every call gives a record on
/// the callee's sidecar (inbound, SERVER) and, when the caller has one, on the caller's (outbound,
/// CLIENT); both halves share trace, x-request-id and connection addresses.
package struct BookinfoRound: Sendable {
    package struct Workload: Sendable, Hashable {
        package var service: String
        package var version: String
        package var pod: String
        package var index: Int

        package var name: String { "\(service)-\(version)" }
        package var nodeID: String { "sidecar~\(BookinfoRound.podIP)~\(pod).default~default.svc.cluster.local" }
        /// Envoy's `node.cluster` and Zipkin `serviceName`.
        package var serviceName: String { "\(service).default" }
        package var userAgent: String { "bookinfo-\(service)/\(version)" }
        var outboundPort: Int { 21001 + 100 * index }
        var inboundPort: Int { 21006 + 100 * index }
        var appPort: Int { 21080 + 100 * index }
    }

    /// One half of a call as one sidecar reports it.
    package struct Side: Sendable {
        package var server: Bool
        package var traceID: [UInt8]  // 16 bytes
        package var spanID: [UInt8]  // 8 bytes
        package var parentID: [UInt8]?
        package var requestID: String
        package var calleeService: String
        package var authority: String
        package var path: String
        package var userAgent: String
        package var status: Int
        package var responseBytes: Int
        /// Microseconds after the template's base time.
        package var startMicros: Int64
        package var durationMicros: Int64
        package var upstreamCluster: String
        package var downstreamLocal: String
        package var downstreamRemote: String
        package var upstreamHost: String
        package var upstreamLocal: String
    }

    package static let podIP = "127.0.0.1"
    package static let workloads: [Workload] = [
        Workload(service: "productpage", version: "v1", pod: "productpage-v1-c2wpfmb65q-zcbrz", index: 1),
        Workload(service: "details", version: "v1", pod: "details-v1-75vcsgqg4t-zsj5t", index: 2),
        Workload(service: "reviews", version: "v1", pod: "reviews-v1-bgvdr4zmhm-54vqv", index: 3),
        Workload(service: "reviews", version: "v2", pod: "reviews-v2-pjwm7fblnq-bnk2b", index: 4),
        Workload(service: "reviews", version: "v3", pod: "reviews-v3-d2zgcfvfln-69bz9", index: 5),
        Workload(service: "ratings", version: "v1", pod: "ratings-v1-x9jx2vb7t8-8qhjl", index: 6),
    ]

    /// Records per sidecar, in `workloads` order.
    package private(set) var sides: [[Side]] = Array(repeating: [], count: 6)
    /// Every id of the round, binary, for finding them in built bodies.
    package private(set) var spanAndTraceIDs: [[UInt8]] = []
    package private(set) var requestIDs: [String] = []

    private var random: SplitMix64
    private var used: Set<[UInt8]> = []
    private var ratingsCalls = 0

    /// A round of `driverRequests` requests spread over `windowMicros`.
    package init(driverRequests: Int, seed: UInt64, windowMicros: Int64 = 2_000_000) {
        random = SplitMix64(seed: seed)
        let spacing = max(1, windowMicros / Int64(max(1, driverRequests)) / 2)
        var t: Int64 = 100_000
        for i in 0..<driverRequests {
            let trace = uniqueID(16)
            let path = i % 50 == 49 ? "/does-not-exist" : "/productpage"
            _ = hop(caller: nil, callee: 0, path: path, at: t, trace: trace, callerSpan: nil, requestID: newRequestID())
            t += spacing
        }
    }

    private mutating func uniqueID(_ count: Int) -> [UInt8] {
        while true {
            var id = [UInt8](repeating: 0, count: count)
            for i in 0..<count { id[i] = UInt8(truncatingIfNeeded: random.next()) }
            if used.insert(id).inserted {
                spanAndTraceIDs.append(id)
                return id
            }
        }
    }

    private mutating func newRequestID() -> String {
        // Envoy's UUID x-request-id; the version nibble 9 marks a traced request.
        let id = uniqueID(16)
        let hex = BookinfoRound.hex(id)
        let chars = Array(hex)
        let text =
            String(chars[0..<8]) + "-" + String(chars[8..<12]) + "-9" + String(chars[13..<16]) + "-a"
            + String(chars[17..<20]) + "-" + String(chars[20..<32])
        spanAndTraceIDs.removeLast()
        requestIDs.append(text)
        return text
    }

    private mutating func between(_ low: Int64, _ high: Int64) -> Int64 {
        low + Int64(random.next() % UInt64(high - low + 1))
    }

    /// One call from `caller`'s sidecar (nil: a driver without one) to `callee`'s; returns when
    /// the caller saw it end.
    private mutating func hop(
        caller: Int?, callee: Int, path: String, at t: Int64, trace: [UInt8], callerSpan: [UInt8]?, requestID: String
    ) -> Int64 {
        let workloads = Self.workloads
        let calleeWorkload = workloads[callee]
        let service = calleeWorkload.service
        let serverSpan = uniqueID(8)
        let clientSpan = caller == nil ? nil : uniqueID(8)
        let serverStart = t + (caller == nil ? 0 : between(150, 700))
        var cursor = serverStart + between(700, 2500)
        var status = 200
        switch service {
        case "productpage":
            if path == "/does-not-exist" {
                status = 404
            } else {
                cursor = hop(
                    caller: callee, callee: 1, path: "/details/0", at: cursor, trace: trace, callerSpan: serverSpan,
                    requestID: requestID) + between(200, 900)
                let reviews = 2 + Int(random.next() % 3)
                cursor = hop(
                    caller: callee, callee: reviews, path: "/reviews/0", at: cursor, trace: trace,
                    callerSpan: serverSpan, requestID: requestID) + between(200, 900)
            }
        case "reviews" where calleeWorkload.version != "v1":
            cursor = hop(
                caller: callee, callee: 5, path: "/ratings/0", at: cursor, trace: trace, callerSpan: serverSpan,
                requestID: requestID) + between(100, 600)
        case "ratings":
            ratingsCalls += 1
            if ratingsCalls % 10 == 0 { status = 500 }
        default:
            break
        }
        let serverEnd = cursor + between(300, 1500)
        let clientEnd = serverEnd + (caller == nil ? 0 : between(150, 700))
        let size =
            switch (service, status) {
            case ("productpage", 404): 22
            case ("productpage", _): 32
            case ("details", _): 56
            case ("reviews", _): calleeWorkload.version == "v1" ? 23 : 40
            case ("ratings", 500): 49
            default: 54
            }
        let authority = "\(service):9080"
        let userAgent = caller.map { workloads[$0].userAgent } ?? "mesh-harness-traffic/1.0"
        let ip = Self.podIP
        let calleeInbound = "\(ip):\(calleeWorkload.inboundPort)"
        let meshConnection = "\(ip):\(32768 + (caller ?? 7) * 97 + callee * 13)"
        let appConnection = "\(ip):\(45000 + callee * 31)"
        sides[callee].append(
            Side(
                server: true, traceID: trace, spanID: serverSpan, parentID: clientSpan, requestID: requestID,
                calleeService: service, authority: authority, path: path, userAgent: userAgent, status: status,
                responseBytes: size, startMicros: serverStart, durationMicros: serverEnd - serverStart,
                upstreamCluster: "inbound|9080||", downstreamLocal: calleeInbound, downstreamRemote: meshConnection,
                upstreamHost: "\(ip):\(calleeWorkload.appPort)", upstreamLocal: appConnection))
        if let caller {
            let callerWorkload = workloads[caller]
            sides[caller].append(
                Side(
                    server: false, traceID: trace, spanID: clientSpan!, parentID: callerSpan, requestID: requestID,
                    calleeService: service, authority: authority, path: path, userAgent: userAgent, status: status,
                    responseBytes: size, startMicros: t, durationMicros: clientEnd - t,
                    upstreamCluster: "outbound|9080||\(service).default.svc.cluster.local",
                    downstreamLocal: "\(ip):\(callerWorkload.outboundPort)",
                    downstreamRemote: "\(ip):\(46000 + caller * 31)", upstreamHost: calleeInbound,
                    upstreamLocal: meshConnection))
        }
        return clientEnd
    }

    package static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
