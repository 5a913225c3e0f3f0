import ArgumentParser
import SextantStore

/// `sextant migrate`: create or upgrade the database and list its migrations.
struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create or upgrade the database schema, then list the applied migrations.")

    @OptionGroup var store: StoreOptions

    func run() async throws {
        let logger = store.makeLogger()
        var configuration = SextantDatabase.Configuration(directory: store.dataDirectory)
        configuration.synchronousFull = store.sync == .full
        let database = try SextantDatabase(configuration: configuration, logger: logger)
        for name in try database.appliedMigrations() { print(name) }
    }
}
