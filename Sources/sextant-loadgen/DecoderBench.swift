import Foundation
import SextantLoadgen
import SextantModel

/// Each decoder alone, in this process, on the bodies the channels send.
struct DecoderReport {
    var channel: LoadChannel
    var records: Int
    var seconds: Double
    var recordsPerSecond: Double { Double(records) / seconds }
    var microsPerRecord: Double { seconds * 1e6 / Double(records) }
    var allocationsPerRecord: Double?
}

func benchDecoders(_ channels: [ChannelPayloads], seconds: Double, log: (String) -> Void) throws -> [DecoderReport] {
    var reports: [DecoderReport] = []
    let now = Int64(Date().timeIntervalSince1970 * 1_000_000) - 5_000_000
    for payloads in channels {
        // Distinct bodies, rendered before the clock starts.
        let requests = (0..<min(200, payloads.perRound * payloads.rounds.count * 8)).map { index -> (parts: [[UInt8]], proxy: WorkloadIdentity?, records: Int) in
            let (request, nonce) = payloads.request(index)
            return (
                request.parts.map { $0.render(nonce: nonce, baseMicros: now) },
                DecoderCalls.proxy(target: request.parts[0].target), request.records
            )
        }
        // Warm up, and check every record decodes.
        for request in requests.prefix(10) {
            let batch = try DecoderCalls.decode(payloads.channel, parts: request.parts, proxy: request.proxy)
            guard batch.rejected.isEmpty, batch.recordCount >= request.records else {
                throw LoadError("\(payloads.channel.rawValue): decoded \(batch.recordCount) of \(request.records) records, rejected \(batch.rejected.prefix(2))")
            }
        }
        // Timed by this thread's CPU clock, in twenty slices, keeping the fastest: on a shared virtual
        // machine, wall time also counts the moments the host runs someone else.
        let slices = 20
        var records = 0
        var elapsed = Double.infinity
        var index = 0
        for _ in 0..<slices {
            let start = threadCPUSeconds()
            var sliceRecords = 0
            var used = 0.0
            while used < seconds / Double(slices) {
                let request = requests[index % requests.count]
                let batch = try DecoderCalls.decode(payloads.channel, parts: request.parts, proxy: request.proxy)
                sliceRecords += request.records
                precondition(batch.recordCount > 0)
                index += 1
                used = threadCPUSeconds() - start
            }
            if used / Double(sliceRecords) < elapsed / Double(max(records, 1)) || records == 0 {
                records = sliceRecords
                elapsed = used
            }
        }
        let allocations = MallocCounter.count {
            for request in requests.prefix(20) {
                _ = try? DecoderCalls.decode(payloads.channel, parts: request.parts, proxy: request.proxy)
            }
        }.map { Double($0) / Double(requests.prefix(20).reduce(0) { $0 + $1.records }) }
        let report = DecoderReport(channel: payloads.channel, records: records, seconds: elapsed, allocationsPerRecord: allocations)
        log("  decoder \(payloads.channel.rawValue): \(Int(report.recordsPerSecond)) records/s, \(fmt(report.microsPerRecord, 2)) µs/record, allocations/record \(fmt(allocations))")
        reports.append(report)
    }
    return reports
}

/// CPU seconds this thread has used.
func threadCPUSeconds() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}

/// Counts calls to malloc while a closure runs, when the process runs with a counting allocator
/// (`LD_PRELOAD` of libmalloc-count from scripts/bench-ingest.sh); nil otherwise.
enum MallocCounter {
    private typealias Counter = @convention(c) () -> UInt64
    private static let counter: Counter? = {
        guard let symbol = dlsym(nil, "sextant_malloc_count") else { return nil }  // nil: RTLD_DEFAULT
        return unsafeBitCast(symbol, to: Counter.self)
    }()

    static func count(_ body: () -> Void) -> Int? {
        guard let counter else { return nil }
        let before = counter()
        body()
        return Int(counter() &- before)
    }
}
