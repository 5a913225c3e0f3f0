import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import SextantServer
import Testing

@Suite struct PageRoutesTests {
    @Test func servesThePageWithoutATokenAndItsFilesWithTheirTypes() async throws {
        try await withCollector(configure: { $0.tokens.query = "secret" }) { collector in
            try await Application(router: collector.apiRouter).test(.router) { client in
                try await client.execute(uri: "/", method: .get) { response in
                    #expect(response.status == .ok)
                    #expect(response.headers[.contentType] == "text/html; charset=utf-8")
                    #expect(response.headers[.contentSecurityPolicy]?.contains("default-src 'self'") == true)
                    let html = String(buffer: response.body)
                    #expect(html.contains("page/sextant.js"))
                    #expect(html.contains("page/sextant.css"))
                }
                for (file, type) in [("sextant.js", "text/javascript"), ("sextant.css", "text/css")] {
                    try await client.execute(uri: "/page/\(file)", method: .get) { response in
                        #expect(response.status == .ok)
                        #expect(response.headers[.contentType]?.hasPrefix(type) == true)
                        #expect(response.body.readableBytes > 0)
                    }
                }
                try await client.execute(uri: "/page/secrets.txt", method: .get) { response in
                    #expect(response.status == .notFound)
                }
                // The data behind the page still needs the query token.
                try await client.execute(uri: "/api/v1/graph", method: .get) { response in
                    #expect(response.status == .unauthorized)
                }
            }
        }
    }

    @Test func servesFromAFolderWhenToldTo() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sextant-page-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        try Data("<!doctype html><title>edited</title>".utf8).write(to: folder.appendingPathComponent("index.html"))
        try await withCollector(configure: { $0.server.pageDirectory = folder.path }) { collector in
            try await Application(router: collector.apiRouter).test(.router) { client in
                try await client.execute(uri: "/", method: .get) { response in
                    #expect(String(buffer: response.body).contains("edited"))
                }
            }
        }
    }
}
