import ArgumentParser
import Foundation
import Logging

/// Options every subcommand that opens the database shares.
struct StoreOptions: ParsableArguments {
    @Option(
        name: .customLong("data-dir"),
        help: ArgumentHelp(
            "Folder of the database (env SEXTANT_DATA_DIR).", valueName: "dir"))
    var dataDirectory: String = ProcessInfo.processInfo.environment["SEXTANT_DATA_DIR"] ?? "./sextant-data"

    @Option(
        help: ArgumentHelp(
            "SQLite synchronous mode: 'full' keeps every acknowledged record through power loss, 'normal' through process crashes only.",
            valueName: "mode"))
    var sync: SyncMode = .full

    @Option(help: ArgumentHelp("Log level: trace, debug, info, notice, warning, error, critical.", valueName: "level"))
    var logLevel: String = "info"

    enum SyncMode: String, ExpressibleByArgument, CaseIterable {
        case full
        case normal
    }

    func validate() throws {
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
        }
    }

    func makeLogger() -> Logger {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = Logger.Level(rawValue: logLevel) ?? .info
            return handler
        }
        return Logger(label: "sextant")
    }
}
