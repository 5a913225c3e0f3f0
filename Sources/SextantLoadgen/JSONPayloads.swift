/// Zipkin v2 JSON spans and Istio JSON access-log lines of a round, as Envoy 1.40 writes them
/// (Tests/Fixtures/envoy/zipkin, Tests/Fixtures/envoy/access-log): one body per sidecar.
package enum JSONPayloads {
    /// `POST /api/v2/spans` bodies, one per sidecar with spans (at most `maxPerBody` spans each).
    package static func zipkin(_ round: BookinfoRound, maxPerBody: Int) throws(TemplateError) -> [BodyTemplate] {
        var out: [BodyTemplate] = []
        for (index, workload) in BookinfoRound.workloads.enumerated() {
            for chunk in chunks(round.sides[index], maxPerBody) {
                var text = "["
                for (n, side) in chunk.enumerated() {
                    if n > 0 { text += "," }
                    text += span(side, workload)
                }
                text += "]"
                let body = Array(text.utf8)
                let patches = try BodyTemplate.findPatches(
                    in: body, textIDs: ids(chunk), binaryIDs: [], times: [.decimalMicros])
                out.append(BodyTemplate(body: body, patches: patches, records: chunk.count, target: "/api/v2/spans"))
            }
        }
        return out
    }

    /// `POST /api/v1/accesslogs?node=<node id>` bodies, one per sidecar (at most `maxPerBody` lines each).
    package static func accessLog(_ round: BookinfoRound, maxPerBody: Int) throws(TemplateError) -> [BodyTemplate] {
        var out: [BodyTemplate] = []
        for (index, workload) in BookinfoRound.workloads.enumerated() {
            for chunk in chunks(round.sides[index], maxPerBody) {
                var text = ""
                for side in chunk { text += line(side) + "\n" }
                let body = Array(text.utf8)
                let patches = try BodyTemplate.findPatches(
                    in: body, textIDs: ids(chunk, spans: false), binaryIDs: [], times: [.isoMillis])
                out.append(
                    BodyTemplate(
                        body: body, patches: patches, records: chunk.count,
                        target: "/api/v1/accesslogs?node=\(percentEncoded(workload.nodeID))"))
            }
        }
        return out
    }

    package static func chunks(_ sides: [BookinfoRound.Side], _ size: Int) -> [ArraySlice<BookinfoRound.Side>] {
        stride(from: 0, to: sides.count, by: size).map { sides[$0..<min($0 + size, sides.count)] }
    }

    /// The text ids of some sides (each once): trace and request ids, span ids too when `spans`.
    static func ids(_ sides: ArraySlice<BookinfoRound.Side>, spans: Bool = true) -> [String] {
        var seen: Set<String> = []
        for side in sides {
            seen.insert(BookinfoRound.hex(side.traceID))
            if spans {
                seen.insert(BookinfoRound.hex(side.spanID))
                if let parent = side.parentID { seen.insert(BookinfoRound.hex(parent)) }
            }
            seen.insert(side.requestID)
        }
        return seen.sorted()
    }

    static func micros(_ relative: Int64) -> String { String(BodyTemplate.templateBaseMicros + relative) }

    /// One span with Envoy's 20 tags (21 with `error`), keys in Envoy's order.
    static func span(_ side: BookinfoRound.Side, _ workload: BookinfoRound.Workload) -> String {
        let parent = side.parentID.map { "\"parentId\":\"\(BookinfoRound.hex($0))\"," } ?? ""
        let annotation = side.server ? "ss" : "cr"
        let tags = tags(side, workload)
        return "{\"timestamp\":\(micros(side.startMicros)),\"kind\":\"\(side.server ? "SERVER" : "CLIENT")\","
            + parent + "\"duration\":\(side.durationMicros),"
            + "\"localEndpoint\":{\"serviceName\":\"\(workload.serviceName)\",\"ipv4\":\"192.0.2.2\",\"port\":0},"
            + "\"annotations\":[{\"timestamp\":\(micros(side.startMicros + side.durationMicros + 120)),"
            + "\"value\":\"\(annotation)\"}],\"tags\":{\(tags)},\"id\":\"\(BookinfoRound.hex(side.spanID))\","
            + "\"traceId\":\"\(BookinfoRound.hex(side.traceID))\","
            + "\"name\":\"\(side.calleeService).default.svc.cluster.local:9080/*\"}"
    }

    /// The members of a span's `tags` object (no braces).
    package static func tags(_ side: BookinfoRound.Side, _ workload: BookinfoRound.Workload) -> String {
        var tags =
            "\"upstream_cluster.name\":\"\(side.upstreamCluster)\",\"http.status_code\":\"\(side.status)\","
            + "\"http.url\":\"http://\(side.authority)\(side.path)\",\"response_flags\":\"-\",\"request_size\":\"0\","
            + "\"node_id\":\"\(workload.nodeID)\",\"istio.canonical_revision\":\"\(workload.version)\","
            + "\"upstream_cluster\":\"\(side.upstreamCluster)\",\"istio.cluster_id\":\"Kubernetes\","
            + "\"response_size\":\"\(side.responseBytes)\",\"istio.namespace\":\"default\","
            + "\"istio.mesh_id\":\"cluster.local\",\"istio.canonical_service\":\"\(workload.service)\","
            + "\"guid:x-request-id\":\"\(side.requestID)\",\"http.protocol\":\"HTTP/1.1\",\"component\":\"proxy\","
            + "\"downstream_cluster\":\"-\",\"peer.address\":\"\(BookinfoRound.podIP)\",\"http.method\":\"GET\","
            + "\"user_agent\":\"\(side.userAgent)\""
        if side.status >= 500 { tags += ",\"error\":\"true\"" }
        return tags
    }

    /// One line of Istio's default JSON access-log format (keys sorted, as Envoy writes them).
    static func line(_ side: BookinfoRound.Side) -> String {
        let milliseconds = side.durationMicros / 1000
        return "{\"authority\":\"\(side.authority)\",\"bytes_received\":0,\"bytes_sent\":\(side.responseBytes),"
            + "\"connection_termination_details\":null,\"downstream_local_address\":\"\(side.downstreamLocal)\","
            + "\"downstream_remote_address\":\"\(side.downstreamRemote)\",\"duration\":\(milliseconds),"
            + "\"method\":\"GET\",\"path\":\"\(side.path)\",\"protocol\":\"HTTP/1.1\","
            + "\"request_id\":\"\(side.requestID)\",\"requested_server_name\":null,"
            + "\"response_code\":\(side.status),\"response_code_details\":\"via_upstream\","
            + "\"response_flags\":\"-\",\"route_name\":\"default\","
            + "\"start_time\":\"\(BodyTemplate.iso(micros: BodyTemplate.templateBaseMicros + side.startMicros))\","
            + "\"trace_id\":\"\(BookinfoRound.hex(side.traceID))\",\"upstream_cluster\":\"\(side.upstreamCluster)\","
            + "\"upstream_host\":\"\(side.upstreamHost)\",\"upstream_local_address\":\"\(side.upstreamLocal)\","
            + "\"upstream_service_time\":\"\(max(0, milliseconds - 1))\","
            + "\"upstream_transport_failure_reason\":null,\"user_agent\":\"\(side.userAgent)\","
            + "\"x_forwarded_for\":null}"
    }

    /// A query value with everything but unreserved characters percent-encoded.
    package static func percentEncoded(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let digits = Array("0123456789ABCDEF")
                out += "%\(digits[Int(byte >> 4)])\(digits[Int(byte & 0xF)])"
            }
        }
        return out
    }
}

/// Splitting a sidecar's records into bodies.
package enum JSONPayloadsChunks {
    package static func chunks(_ sides: [BookinfoRound.Side], _ size: Int) -> [ArraySlice<BookinfoRound.Side>] {
        JSONPayloads.chunks(sides, size)
    }
}
