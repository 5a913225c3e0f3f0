import Hummingbird

/// The query parameters of an API call, from a request's URL or given directly (`LocalQueries`):
/// the first value of each name, as Hummingbird's own look-up gives it.
package struct QueryParameters: Sendable {
    private var values: [String: String]

    package init(_ values: [String: String]) {
        self.values = values
    }

    init(_ request: Request) {
        values = [:]
        for (name, value) in request.uri.queryParameters where values[String(name)] == nil {
            values[String(name)] = String(value)
        }
    }

    subscript(_ name: String) -> Substring? {
        values[name].map { $0[...] }
    }
}
