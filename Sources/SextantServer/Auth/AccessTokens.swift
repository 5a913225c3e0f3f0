/// Optional bearer tokens: one for senders of telemetry (ingest), one for readers (queries,
/// `/metrics`, `/federate`, traces). A nil token leaves that side open.
package struct AccessTokens: Sendable {
    /// Flag `--ingest-token-file`.
    package var ingest: String?
    /// Flag `--query-token-file`.
    package var query: String?

    package init(ingest: String? = nil, query: String? = nil) {
        self.ingest = ingest
        self.query = query
    }

    enum Scope {
        case ingest
        case query
        case open
    }

    /// Whether an `Authorization` header value grants `scope`.
    func allows(_ scope: Scope, authorization: String?) -> Bool {
        let required: String?
        switch scope {
        case .ingest: required = ingest
        case .query: required = query
        case .open: required = nil
        }
        guard let required else { return true }
        guard let authorization, authorization.count > 7, authorization.prefix(7).lowercased() == "bearer " else {
            return false
        }
        return Self.constantTimeEqual(Array(authorization.dropFirst(7).utf8), Array(required.utf8))
    }

    /// Compares without stopping at the first difference, so timing tells nothing about the token.
    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(a.count == b.count ? 0 : 1)
        for i in 0..<max(a.count, b.count) {
            difference |= (i < a.count ? a[i] : 0) ^ (i < b.count ? b[i] : 0)
        }
        return difference == 0
    }
}
