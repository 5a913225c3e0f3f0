import Synchronization
import Foundation
import Logging
import SextantLoadgen
import SextantModel
import SextantStore

/// Today's write path alone: payloads decoded first, then written through `IngestWriter` (group
/// commit, `synchronous=FULL`) by `concurrency` senders, on a database pre-filled with an hour.
/// This is the rate the storage alone allows.
struct StoreReport {
    var channel: LoadChannel
    var records: Int
    var seconds: Double
    /// CPU time of this process (the writer and the tasks handing it batches) per record.
    var cpuMicrosPerRecord: Double
    /// Growth of the tables (indexes included) per record, right after the commits.
    var diskBytesPerRecord: Double
    /// The same once the span blocks are merged as a running server merges them.
    var mergedBytesPerRecord: Double
    /// `mergedBytesPerRecord` by table, largest first.
    var mergedByTable: String
    var recordsPerSecond: Double { Double(records) / seconds }
}

func benchStore(
    _ channels: [ChannelPayloads], prefillRecords: Int, records: Int, concurrency: Int, log: (String) -> Void
) async throws -> [StoreReport] {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sextant-loadgen-store-\(UUID().uuidString.prefix(8))").path
    defer { try? FileManager.default.removeItem(atPath: folder) }
    var configuration = SextantDatabase.Configuration(directory: folder)
    configuration.synchronousFull = true
    let logger = Logger(label: "sextant-loadgen.store")
    let database = try SextantDatabase(configuration: configuration, logger: logger)
    let writer = IngestWriter(database: database, logger: logger)
    let nowMicros = Int64(Date().timeIntervalSince1970 * 1_000_000)

    /// Decoded batches of `count` records of a channel, times spread from `firstMicros` by `stepMicros`.
    /// `count` and the totals are in the channel's own records (spans, lines, entries), as the
    /// load is acknowledged, not in stored rows (a proxy's span is a span and a call).
    func batches(_ payloads: ChannelPayloads, count: Int, firstMicros: Int64, lastMicros: Int64) throws
        -> (batches: [IngestBatch], records: Int)
    {
        var out: [IngestBatch] = []
        var total = 0
        var index = 0
        let perRound = payloads.recordsPerRequest.reduce(0, +)
        let requests = max(1, count / perRound * payloads.perRound)
        // More than enough rounds for `count` records, none shared with another phase.
        let firstIndex = payloads.reserve(requests: requests + payloads.perRound)
        while total < count {
            let (request, nonce) = payloads.request(firstIndex + index)
            let base = firstMicros + (lastMicros - firstMicros) * Int64(index) / Int64(requests)
            let parts = request.parts.map { $0.render(nonce: nonce, baseMicros: base) }
            let batch = try DecoderCalls.decode(
                payloads.channel, parts: parts, proxy: DecoderCalls.proxy(target: request.parts[0].target))
            total += request.records
            out.append(batch)
            index += 1
        }
        return (out, total)
    }

    /// The seconds writing took, and the CPU seconds this process spent meanwhile.
    func write(_ batches: [IngestBatch]) async throws -> (seconds: Double, cpuSeconds: Double) {
        let next = SharedCounter()
        let clock = ContinuousClock()
        let start = clock.now
        let cpuBefore = ProcStats.read(pid: getpid())?.cpuTicks ?? 0
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<concurrency {
                group.addTask {
                    while true {
                        let index = next.add()
                        if index >= batches.count { return }
                        _ = try await writer.write(batches[index])
                    }
                }
            }
            try await group.waitForAll()
        }
        let cpuTicks = (ProcStats.read(pid: getpid())?.cpuTicks ?? 0) - cpuBefore
        return (Double((clock.now - start) / .microseconds(1)) / 1e6, Double(cpuTicks) / ProcStats.ticksPerSecond)
    }

    /// Bytes per record each table grew by, largest first.
    func growth(_ after: [String: Int64], since before: [String: Int64], records: Int) -> [(table: String, bytes: Double)] {
        after.map { (table: $0.key, bytes: Double($0.value - (before[$0.key] ?? 0)) / Double(records)) }
            .filter { $0.bytes != 0 }.sorted { $0.bytes > $1.bytes }
    }

    var reports: [StoreReport] = []
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await writer.run() }
        let share = max(1, prefillRecords / max(1, channels.count))
        for payloads in channels {
            _ = try await write(try batches(payloads, count: share, firstMicros: nowMicros - 3_600_000_000, lastMicros: nowMicros - 120_000_000).batches)
        }
        log("  store: pre-filled \(prefillRecords) records over the past hour")
        for payloads in channels {
            let (prepared, written) = try batches(
                payloads, count: records, firstMicros: nowMicros - 60_000_000, lastMicros: nowMicros - 5_000_000)
            // Blocks merged as a running server's compactor merges them, before and after.
            while try await database.compactSpanBlocks(settledBeforeMicros: .max) > 0 {}
            let tablesBefore = try await database.bytesByTable()
            let (seconds, cpuSeconds) = try await write(prepared)
            let committed = growth(try await database.bytesByTable(), since: tablesBefore, records: written)
            while try await database.compactSpanBlocks(settledBeforeMicros: .max) > 0 {}
            let merged = growth(try await database.bytesByTable(), since: tablesBefore, records: written)
            let report = StoreReport(
                channel: payloads.channel, records: written, seconds: seconds,
                cpuMicrosPerRecord: cpuSeconds * 1e6 / Double(written),
                diskBytesPerRecord: committed.reduce(0) { $0 + $1.bytes }, mergedBytesPerRecord: merged.reduce(0) { $0 + $1.bytes },
                mergedByTable: merged.map { "\($0.table) \(String(format: "%.1f", $0.bytes))" }.joined(separator: ", "))
            log("  store \(payloads.channel.rawValue): \(Int(report.recordsPerSecond)) records/s (\(written) records)")
            reports.append(report)
        }
        group.cancelAll()
    }
    return reports
}
