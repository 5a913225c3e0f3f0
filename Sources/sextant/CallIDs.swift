import ArgumentParser
import SextantStore

/// `sextant call-ids`: every stored call's ids, for audits (did every acknowledged access-log line
/// arrive?). Safe while `sextant serve` runs on the same folder: it reads a snapshot.
struct CallIDs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "call-ids",
        abstract: "Print the ids of every stored call, one call per line.",
        discussion: """
            Columns: call id, reporter (source or destination), the 64-bit hash of its \
            x-request-id as 16 hex digits (the id itself is stored only as this hash), trace id, \
            span id, and whether it is paired (1 or 0). A "-" stands for a missing id. The hash, \
            over the id's UTF-8 bytes: h = 0xcbf29ce484222325; for each whole 8-byte word w \
            (little-endian), h = (h ^ w) * 0x100000001b3, then h ^= h >> 29; for each byte b \
            left, h = (h ^ b) * 0x100000001b3; finally h ^= h >> 33, h *= 0xff51afd7ed558ccd, \
            h ^= h >> 33 (all modulo 2^64).
            """)

    @OptionGroup var store: StoreOptions

    func run() async throws {
        let database = try SextantDatabase(
            configuration: .init(directory: store.dataDirectory), logger: store.makeLogger())
        for call in try await database.everyCall() {
            let hash = call.requestIDHash.map { String(repeating: "0", count: 16 - String($0, radix: 16).count) + String($0, radix: 16) }
            print(
                call.rowID, call.reporter == .source ? "source" : "destination", hash ?? "-",
                call.traceID?.hex ?? "-", call.spanID?.hex ?? "-", call.paired ? 1 : 0)
        }
    }
}
