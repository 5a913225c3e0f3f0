import Logging
import SextantStore
import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Keeps the process under `--memory-limit`: ingest is refused (HTTP 503 with `Retry-After`, gRPC
/// UNAVAILABLE) while the resident size, plus what admitted requests may still allocate, would pass
/// `sheddingFraction` of the limit.
///
/// The resident size is read from `/proc/self/statm` every `sampleInterval`, without the pages that
/// map files: SQLite maps the database file for reads (`mmap_size`), and those pages are the
/// kernel's cache, shared and reclaimable, not memory the process holds. Each admitted request
/// reserves an estimate of what it will allocate (its body, then its decoded records) until it is
/// answered, so a burst between two samples cannot overshoot. A request the estimate already
/// covers is counted twice once the next sample sees it: shedding errs on the safe side.
final class MemoryGuard: Service, Sendable {
    /// Ingest refused for memory; the sender should retry.
    struct Refusal: Error, Sendable, CustomStringConvertible {
        var message: String
        var description: String { message }
    }

    /// Share of the limit past which ingest sheds.
    static let sheddingFraction = 0.8
    /// Bytes a request's decoded records are assumed to take per byte of (decompressed) body.
    static let decodedBytesPerBodyByte = 6
    private static let sampleInterval = Duration.milliseconds(50)
    /// The longest the guard goes without handing free memory back.
    static let idleTrimInterval = Duration.seconds(10)
    private static let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))

    private struct State {
        var residentBytes = 0
        var reservedBytes = 0
        var refusals = 0
        var peakResidentBytes = 0
    }

    /// The limit in bytes; 0 turns the guard off.
    let limitBytes: Int
    private let logger: Logger
    private let state = Mutex(State())

    init(limitBytes: Int, logger: Logger) {
        self.limitBytes = limitBytes
        self.logger = logger
        sample()
    }

    /// Runs `body` with `bytes` reserved, or refuses at once when they do not fit.
    /// - Throws: `Refusal` when ingest must shed; whatever `body` throws.
    func reserving<T>(_ bytes: Int, _ body: () async throws -> T) async throws -> T {
        try reserve(bytes)
        defer { release(bytes) }
        return try await body()
    }

    /// Refuses when the process is already over its shedding threshold (for work that is decoded
    /// already, such as a gRPC message).
    func check() throws {
        try reserve(0)
    }

    /// Reserves `bytes` until `release(_:)` gives them back, or refuses at once when they do not fit.
    /// - Throws: `Refusal` when ingest must shed.
    func reserve(_ bytes: Int) throws {
        guard limitBytes > 0 else { return }
        let threshold = Int(Double(limitBytes) * Self.sheddingFraction)
        let refused: (resident: Int, reserved: Int)? = state.withLock { state in
            if state.residentBytes + state.reservedBytes + bytes > threshold {
                state.refusals += 1
                return (state.residentBytes, state.reservedBytes)
            }
            state.reservedBytes += bytes
            return nil
        }
        if let refused {
            throw Refusal(
                message: "memory is near the limit (\(refused.resident >> 20) MiB resident, \(refused.reserved >> 20) MiB "
                    + "reserved by requests in flight, limit \(limitBytes >> 20) MiB, --memory-limit); retry later")
        }
    }

    /// Gives back what `reserve(_:)` took.
    func release(_ bytes: Int) {
        guard limitBytes > 0 else { return }
        state.withLock { $0.reservedBytes -= bytes }
    }

    /// The newest resident size and the highest seen, in bytes.
    var residentBytes: (now: Int, peak: Int) {
        state.withLock { ($0.residentBytes, $0.peakResidentBytes) }
    }

    func run() async throws {
        guard limitBytes > 0 else {
            // Returning would stop the whole group.
            try? await gracefulShutdown()
            return
        }
        var lastTrim = ContinuousClock.now
        var afterTrim = sample()
        while !Task.isCancelled, !Task.isShuttingDownGracefully {
            try? await Task.sleep(for: Self.sampleInterval)
            let resident = sample()
            // glibc keeps freed memory for reuse; handing it back lets the resident size (and
            // shedding) follow what is really in use once a burst is over: near the limit, and
            // whenever a burst (a large federation answer, a wave of new series) left it well
            // above what it was after the last trim.
            // And every ten seconds whatever happened: a trim taken during a burst measures
            // memory still in use, so the end of the burst shows no growth to trim for.
            let grown = resident > afterTrim + max(32 << 20, afterTrim / 4)
            let wait: Duration = resident > limitBytes / 2 ? .seconds(1) : .seconds(5)
            let sinceTrim = ContinuousClock.now - lastTrim
            if (resident > limitBytes / 2 || grown) && sinceTrim > wait || sinceTrim > Self.idleTrimInterval {
                lastTrim = .now
                Malloc.trim()
                afterTrim = sample()
            }
        }
    }

    /// Reads the resident size not backed by files from `/proc/self/statm`: its second field (resident)
    /// less its third (shared: file-backed and shared memory), in pages.
    @discardableResult
    private func sample() -> Int {
        guard let resident = Self.readResidentBytes() else { return 0 }
        state.withLock {
            $0.residentBytes = resident
            $0.peakResidentBytes = max($0.peakResidentBytes, resident)
        }
        return resident
    }

    static func readResidentBytes() -> Int? {
        guard let file = fopen("/proc/self/statm", "r") else { return nil }
        defer { fclose(file) }
        var line = [CChar](repeating: 0, count: 128)
        guard fgets(&line, Int32(line.count), file) != nil else { return nil }
        let fields = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            .split(separator: " ")
        guard fields.count >= 3, let resident = Int(fields[1]), let shared = Int(fields[2]) else { return nil }
        return max(0, resident - shared) * pageSize
    }
}
