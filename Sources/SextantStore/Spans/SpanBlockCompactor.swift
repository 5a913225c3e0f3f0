import Foundation
package import Logging
package import ServiceLifecycle

/// Merges the small span blocks of quiet periods into large ones (`compactSpanBlocks`), every
/// `interval`, once their spans are `settle` old: late spans of a trace usually arrive within
/// seconds, so a merged block rarely needs merging again.
package final class SpanBlockCompactor: Service, Sendable {
    package struct Configuration: Sendable {
        package var interval: Duration = .seconds(30)
        /// How old a block's newest span must be before the block is merged.
        package var settleSeconds: Int64 = 120
        /// Blocks of fewer spans than this are merged; larger ones (busy commits) stay as they are.
        package var smallSpans = 1000
        /// Spans a merged block holds at most.
        package var targetSpans = 20_000

        package init() {}
    }

    private let database: SextantDatabase
    private let configuration: Configuration
    private let logger: Logger
    private let now: @Sendable () -> Int64

    /// - Parameter now: the current time in Unix seconds (injected so tests can drive it).
    package init(
        database: SextantDatabase, configuration: Configuration = .init(), logger: Logger,
        now: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970) }
    ) {
        self.database = database
        self.configuration = configuration
        self.logger = logger
        self.now = now
    }

    package func run() async throws {
        try await runPeriodically(every: configuration.interval, logger: logger, failure: "span block compaction failed") {
            let merged = try await self.compact()
            if merged > 0 { self.logger.debug("span blocks merged", metadata: ["store.blocks": "\(merged)"]) }
        }
    }

    /// One pass; returns how many blocks were merged into larger ones.
    @discardableResult
    package func compact() async throws -> Int {
        try await database.compactSpanBlocks(
            settledBeforeMicros: (now() - configuration.settleSeconds) * 1_000_000,
            smallSpans: configuration.smallSpans, targetSpans: configuration.targetSpans)
    }
}
