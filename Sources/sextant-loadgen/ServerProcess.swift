import Foundation
import NIOCore
import NIOPosix
import SextantLoadgen

/// A `sextant serve` this generator started on free loopback ports with a temporary data dir, or
/// one already running (then only its ports are known, and no /proc readings unless `--server-pid`).
final class ServerProcess: @unchecked Sendable {  // set up once, then only read
    let ports: TargetPorts
    let pid: Int32?
    let dataDirectory: String?
    private let process: Process?
    private let temporary: String?

    /// Starts `binary serve` and waits for `/readyz`.
    convenience init(binary: String, extraArguments: [String], group: MultiThreadedEventLoopGroup) async throws {
        let free = try Self.freePorts(5)
        let ports = TargetPorts(http: free[0], zipkin: free[1], grpc: free[2], otlpHTTP: free[3])
        try await self.init(
            binary: binary, ports: ports, dataDirectory: true, group: group,
            arguments: { data in
                [
                    "serve", "--data-dir", data, "--listen", "127.0.0.1", "--http-port", "\(free[0])",
                    "--zipkin-port", "\(free[1])", "--grpc-port", "\(free[2])", "--otlp-http-port", "\(free[3])",
                    "--statsd-port", "\(free[4])",
                ] + extraArguments
            })
    }

    /// Starts this generator's HTTP floor server (`HTTPFloorServer`) on one port for every HTTP
    /// channel, and waits for its `/readyz`.
    convenience init(floorOf generator: String, group: MultiThreadedEventLoopGroup) async throws {
        let port = try Self.freePorts(1)[0]
        try await self.init(
            binary: generator, ports: TargetPorts(http: port, zipkin: port, grpc: port, otlpHTTP: port),
            dataDirectory: false, group: group, arguments: { _ in ["--floor-server-port", "\(port)"] })
    }

    private init(
        binary: String, ports: TargetPorts, dataDirectory hasData: Bool, group: MultiThreadedEventLoopGroup,
        arguments: (String) -> [String]
    ) async throws {
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("sextant-loadgen-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: tmp + "/data", withIntermediateDirectories: true)
        self.ports = ports
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments(tmp + "/data")
        _ = FileManager.default.createFile(atPath: tmp + "/sextant.log", contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: tmp + "/sextant.log"))
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        // The generator may run with a malloc counter preloaded (scripts/bench-ingest.sh); not the servers.
        process.environment = ProcessInfo.processInfo.environment.filter { $0.key != "LD_PRELOAD" }
        try process.run()
        self.process = process
        pid = process.processIdentifier
        dataDirectory = hasData ? tmp + "/data" : nil
        temporary = tmp
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            guard process.isRunning else { throw LoadError("\(binary) exited (\(process.terminationStatus)) before /readyz; log: \(tmp)/sextant.log") }
            if let (status, _) = try? await Self.get(port: ports.http, path: "/readyz", group: group), status == 200 { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        stop(keep: true)
        throw LoadError("\(binary) not ready after 60 s; log: \(tmp)/sextant.log")
    }

    /// A running instance.
    init(ports: TargetPorts, pid: Int32?, dataDirectory: String?) {
        self.ports = ports
        self.pid = pid
        self.dataDirectory = dataDirectory
        process = nil
        temporary = nil
    }

    /// Stops the process this generator started (SIGTERM, then SIGKILL after 20 s) and removes its
    /// temporary folder unless `keep`.
    func stop(keep: Bool = false) {
        if let process, process.isRunning {
            kill(process.processIdentifier, SIGTERM)
            let deadline = Date().addingTimeInterval(20)
            while process.isRunning, Date() < deadline { usleep(50_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
        }
        if let temporary, !keep { try? FileManager.default.removeItem(atPath: temporary) }
    }

    var logPath: String? { temporary.map { $0 + "/sextant.log" } }

    /// Bytes of the files in the data directory.
    func diskBytes() -> Int? {
        guard let dataDirectory, let names = try? FileManager.default.contentsOfDirectory(atPath: dataDirectory) else {
            return nil
        }
        return names.reduce(0) { total, name in
            let size = (try? FileManager.default.attributesOfItem(atPath: dataDirectory + "/" + name)[.size] as? Int) ?? 0
            return total + size
        }
    }

    /// `GET` on the HTTP port: status and body text.
    static func get(port: Int, path: String, group: MultiThreadedEventLoopGroup) async throws -> (Int, String) {
        try await HTTPLoadConnection.with(port: port, group: group) { session in
            let answer = try await session.send(method: .GET, path: path, contentType: nil, body: nil)
            return (answer.status, String(buffer: answer.body))
        }
    }

    /// Ports nothing listens on now (bound to port 0, then released).
    static func freePorts(_ count: Int) throws -> [Int] {
        var sockets: [Int32] = []
        defer { sockets.forEach { close($0) } }
        var ports: [Int] = []
        for _ in 0..<count {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { throw LoadError("socket() failed") }
            sockets.append(fd)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            address.sin_port = 0
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
            }
            guard bound == 0 else { throw LoadError("bind() failed") }
            _ = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
            }
            ports.append(Int(UInt16(bigEndian: address.sin_port)))
        }
        return ports
    }
}

/// CPU seconds this process used (user + system).
func ownCPUSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)
        + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1_000_000
}
