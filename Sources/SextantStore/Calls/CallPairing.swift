import SextantModel

/// The rules that make one call of the reports proxies send: a report of a call already stored
/// (a resend, or the same call from another channel) merges into it; a report from the other side
/// of a call pairs the two. Pure: the writer applies them to `CallIndex` and stores the outcome.
extension OpenCall {
    /// A call as its first report gives it. (The report is borrowed: an initializer would
    /// otherwise take its own copy, retaining each of its strings.)
    init(rowID: Int64, key: Int64, report r: borrowing PreparedRequest, proxyID: Int64, serviceID: Int64, peerID: Int64?) {
        self.rowID = rowID
        self.key = key
        sample = CallSample(
            facts: CallFacts(
                reporter: r.reporter.rawValue, proxyID: proxyID, peerID: peerID ?? 0, serviceID: serviceID,
                requestProtocol: r.requestProtocol, responseCode: r.responseCode, grpcStatus: r.grpcStatus ?? -1,
                responseFlags: r.responseFlags, securityPolicy: r.securityPolicy, paired: false),
            startMicros: r.startMicros, durationMicros: r.durationMicros, latencyBucket: r.latencyBucket,
            requestBytes: r.requestBytes, responseBytes: r.responseBytes, sources: r.sources)
        requestID = r.requestIDHash
        localAddress = r.localAddressHash
        remoteAddress = r.remoteAddressHash
        traceID = r.traceID
        spanID = r.spanID
        parentSpanID = r.parentSpanID
    }

    /// The call once another report of it is merged in: the report's channel joins the sources,
    /// and what the call did not know yet (its peer, ids, addresses) is taken from the report.
    /// What was measured stays as first stored.
    func merging(_ r: PreparedRequest, peerID: Int64?) -> OpenCall {
        var merged = self
        merged.sample.sources |= r.sources
        if merged.sample.facts.peerID == 0, let peerID { merged.sample.facts.peerID = peerID }
        merged.traceID = traceID ?? r.traceID
        merged.spanID = spanID ?? r.spanID
        merged.parentSpanID = parentSpanID ?? r.parentSpanID
        merged.localAddress = localAddress ?? r.localAddressHash
        merged.remoteAddress = remoteAddress ?? r.remoteAddressHash
        return merged
    }

    /// The call once paired with the other proxy's report: each side names the other's proxy.
    func paired(with other: OpenCall) -> OpenCall {
        var linked = self
        linked.sample = sample.paired(with: other.proxyID)
        return linked
    }
}

extension CallIndex {
    /// The other proxy's report of `call`, if one is here and unpaired: the client span's child
    /// server span (same trace, parent = client span id), or else the report with the same
    /// `x-request-id` for the same service from another proxy (and, when both sides know it, the
    /// address the caller connected to), the closest in time.
    func partner(of call: OpenCall) -> OpenCall? {
        let other: Reporter = call.reporter == .source ? .destination : .source
        let wanted = CallIndex.Link.partnerLinks(
            reporter: call.reporter, serviceID: call.serviceID, requestID: call.requestID, traceID: call.traceID,
            spanID: call.spanID, parentSpanID: call.parentSpanID)
        func isOpen(_ candidate: OpenCall) -> Bool {
            !candidate.isPaired && candidate.rowID != call.rowID && candidate.reporter == other
        }
        var found: OpenCall?
        if let link = wanted.span {
            forEachCall(under: link) { candidate in
                let linked =
                    candidate.traceID == call.traceID
                    && (call.reporter == .source ? candidate.parentSpanID == call.spanID : candidate.spanID == call.parentSpanID)
                if isOpen(candidate), linked { found = candidate }
                return found == nil
            }
        }
        guard found == nil, let requestID = call.requestID, let link = wanted.request else { return found }
        // The inbound side's local address is the address the caller connected to.
        let target = call.reporter == .source ? call.remoteAddress : call.localAddress
        var closest: Int64 = .max
        forEachCall(under: link) { candidate in
            let theirs = call.reporter == .source ? candidate.localAddress : candidate.remoteAddress
            let distance = abs(candidate.sample.startMicros - call.sample.startMicros)
            if isOpen(candidate), candidate.requestID == requestID, candidate.serviceID == call.serviceID,
                candidate.proxyID != call.proxyID, target == nil || theirs == nil || theirs == target, distance < closest
            {
                found = candidate
                closest = distance
            }
            return true
        }
        return found
    }
}
