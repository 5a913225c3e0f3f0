#if canImport(Glibc)
import Glibc
#endif

/// Readings of a process from Linux's /proc: CPU time, bytes written, resident memory.
package struct ProcStats: Sendable, Hashable {
    /// User + system CPU clock ticks (`/proc/<pid>/stat` fields 14 and 15).
    package var cpuTicks: Int
    /// Bytes the process caused to be written to storage (`/proc/<pid>/io` `write_bytes`).
    package var writeBytes: Int?

    package init(cpuTicks: Int, writeBytes: Int?) {
        self.cpuTicks = cpuTicks
        self.writeBytes = writeBytes
    }

    /// User + system clock ticks from the text of `/proc/<pid>/stat`. The command name (field 2)
    /// may hold spaces and parentheses, so fields are counted after its last ')'.
    package static func cpuTicks(stat: String) -> Int? {
        guard let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ", omittingEmptySubsequences: true)
        // fields[0] is field 3 (state): utime is field 14, stime field 15.
        guard fields.count > 12, let user = Int(fields[11]), let system = Int(fields[12]) else { return nil }
        return user + system
    }

    /// The value of a `key: value` line (`/proc/<pid>/io`), or of a `key:   123 kB` line
    /// (`/proc/<pid>/status`, in kB as written).
    package static func field(_ key: String, in text: String) -> Int? {
        for line in text.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":"), line[..<colon] == key[...] else { continue }
            let value = line[line.index(after: colon)...].split(whereSeparator: { $0 == " " || $0 == "\t" }).first
            return value.flatMap { Int($0) }
        }
        return nil
    }

    /// The process's readings now, or nil when it is gone.
    package static func read(pid: Int32) -> ProcStats? {
        guard let stat = readFile("/proc/\(pid)/stat"), let ticks = cpuTicks(stat: stat) else { return nil }
        return ProcStats(cpuTicks: ticks, writeBytes: readFile("/proc/\(pid)/io").flatMap { field("write_bytes", in: $0) })
    }

    /// Anonymous resident memory in bytes (`RssAnon` of `/proc/<pid>/status`).
    package static func rssAnonBytes(pid: Int32) -> Int? {
        readFile("/proc/\(pid)/status").flatMap { field("RssAnon", in: $0) }.map { $0 * 1024 }
    }

    /// Clock ticks per second (`sysconf(_SC_CLK_TCK)`, 100 on Linux).
    package static let ticksPerSecond: Double = {
        #if canImport(Glibc)
        let ticks = sysconf(Int32(_SC_CLK_TCK))
        return ticks > 0 ? Double(ticks) : 100
        #else
        return 100
        #endif
    }()

    /// A small text file read whole (the /proc files are not seekable by size).
    package static func readFile(_ path: String) -> String? {
        #if canImport(Glibc)
        guard let file = fopen(path, "r") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = fread(&buffer, 1, buffer.count, file)
            if n <= 0 { break }
            bytes += buffer[..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
        #else
        return nil
        #endif
    }
}

/// Counter values in a Prometheus text exposition (`/metrics`).
package enum MetricsText {
    /// The sum of every sample of the metric `name` (any labels), or nil when it is absent.
    package static func sum(_ name: String, in text: String) -> Double? {
        var total: Double?
        for line in text.split(separator: "\n") where line.hasPrefix(name) {
            let rest = line.dropFirst(name.count)
            guard let next = rest.first, next == " " || next == "{" else { continue }
            guard let value = rest.split(separator: " ").last.flatMap({ Double($0) }) else { continue }
            total = (total ?? 0) + value
        }
        return total
    }
}
