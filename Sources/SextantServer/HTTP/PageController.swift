import Foundation
import Hummingbird
import NIOCore

/// The operator's page at `/`: hand-written HTML, CSS and JavaScript compiled into the binary
/// (`Sources/SextantServer/Page`, `embedInCode`). It asks for nothing but its own files; the data
/// comes from the query API with the query token, which the page asks for when a call answers 401.
struct PageController: Sendable {
    /// Serves the files from this folder instead of the compiled-in copies, read on every request
    /// (flag `--page-directory`, for working on the page without rebuilding).
    let directory: String?

    func addRoutes(to group: RouterGroup<some RequestContext>) {
        group.get("/", use: { request, context in try file("index.html") })
        group.get("/page/:file", use: { request, context in
            try file(context.parameters.get("file") ?? "")
        })
    }

    /// Each file of the page and its media type.
    static let files: [String: (type: String, bytes: [UInt8])] = [
        "index.html": ("text/html; charset=utf-8", PackageResources.index_html),
        "sextant.css": ("text/css; charset=utf-8", PackageResources.sextant_css),
        "sextant.js": ("text/javascript; charset=utf-8", PackageResources.sextant_js),
    ]

    private func file(_ name: String) throws -> Response {
        guard let entry = Self.files[name] else { throw NotFound(message: "no page file '\(name.prefix(60))'") }
        var bytes = entry.bytes
        if let directory {
            bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: directory).appendingPathComponent(name)))
        }
        return Response(
            status: .ok,
            headers: [
                .contentType: entry.type, .cacheControl: "no-cache",
                // The page loads nothing from elsewhere, and nothing may frame it.
                .contentSecurityPolicy:
                    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
                .xContentTypeOptions: "nosniff",
            ],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}
