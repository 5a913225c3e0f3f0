import ArgumentParser
import SextantStore

/// `sextant span-ids`: every stored span's trace and span id, for audits (did everything
/// acknowledged arrive?). Safe while `sextant serve` runs on the same folder: it reads a snapshot.
struct SpanIDs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "span-ids",
        abstract: "Print the trace id and span id of every stored span, one span per line.")

    @OptionGroup var store: StoreOptions

    func run() async throws {
        let database = try SextantDatabase(
            configuration: .init(directory: store.dataDirectory), logger: store.makeLogger())
        try await database.forEachStoredSpanID { trace, span in print(trace.hex, span.hex) }
    }
}
