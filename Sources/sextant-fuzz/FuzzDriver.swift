// The fuzz driver for Sextant's decoders (README, "Fuzzing").
//
// Built with `--sanitize=fuzzer -Xswiftc -DFUZZING` (scripts/fuzz.sh) it is a libFuzzer binary
// running the target named by `SEXTANT_FUZZ_TARGET`. Built normally it replays inputs instead:
//
//     sextant-fuzz --list
//     sextant-fuzz <target> <file or folder>...
//     sextant-fuzz --all <folder with one subfolder per target>...
internal import Foundation
internal import SextantFuzz

#if FUZZING

/// libFuzzer calls in from one thread only, after `LLVMFuzzerInitialize` has set this.
nonisolated(unsafe) private var selected: FuzzTarget?

@_cdecl("LLVMFuzzerInitialize")
public func initialize(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>
) -> CInt {
    let name = ProcessInfo.processInfo.environment["SEXTANT_FUZZ_TARGET"] ?? ""
    guard let target = FuzzTarget.named(name) else {
        let names = FuzzTarget.all.map(\.name).joined(separator: ", ")
        FileHandle.standardError.write(Data("set SEXTANT_FUZZ_TARGET to one of: \(names)\n".utf8))
        exit(2)
    }
    selected = target
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    _ = selected?.run(input)
    return 0
}

/// libFuzzer's own mutator, which a custom mutator may call.
@_silgen_name("LLVMFuzzerMutate")
private func libFuzzerMutate(_ data: UnsafeMutablePointer<UInt8>, _ size: Int, _ maxSize: Int) -> Int

/// Protobuf targets get a field-level mutation every other time; everything else, and every
/// input that is no protobuf message, gets libFuzzer's byte mutations (with the dictionary).
@_cdecl("LLVMFuzzerCustomMutator")
public func customMutator(_ data: UnsafeMutablePointer<UInt8>, _ size: Int, _ maxSize: Int, _ seed: CUnsignedInt)
    -> Int
{
    if selected?.isProtobuf == true, seed & 1 == 0 {
        var mutator = ProtobufWireMutator(seed: UInt64(seed)) { bytes, limit in
            if bytes.isEmpty { bytes = [0] }
            let count = bytes.count
            bytes += [UInt8](repeating: 0, count: max(0, limit - count))
            let written = bytes.withUnsafeMutableBufferPointer { libFuzzerMutate($0.baseAddress!, count, $0.count) }
            bytes.removeLast(bytes.count - written)
        }
        if let output = mutator.mutate(Array(UnsafeBufferPointer(start: data, count: size)), maxSize: maxSize) {
            output.withUnsafeBufferPointer { data.update(from: $0.baseAddress!, count: output.count) }
            return output.count
        }
    }
    return libFuzzerMutate(data, size, maxSize)
}

#else

@main
struct FuzzDriver {
    static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        switch arguments.first {
        case "--list"?:
            for target in FuzzTarget.all { print("\(target.name)\t\(target.summary)") }
        case "--all"? where arguments.count > 1:
            for root in arguments.dropFirst() {
                for target in FuzzTarget.all {
                    replay(target, path: root + "/" + target.name)
                }
            }
        case let name? where arguments.count > 1:
            guard let target = FuzzTarget.named(name) else { usage("unknown target '\(name)'") }
            for path in arguments.dropFirst() { replay(target, path: path) }
        case "--help"?, "-h"?:
            usage(nil)
        default:
            usage("expected --list, --all or a target and inputs")
        }
    }

    /// Runs one file, or every file under a folder, through the target.
    static func replay(_ target: FuzzTarget, path: String) {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) else { return }
        let files: [String]
        if isFolder.boolValue {
            let enumerator = FileManager.default.enumerator(atPath: path)
            files = (enumerator?.allObjects as? [String] ?? []).sorted().map { path + "/" + $0 }
        } else {
            files = [path]
        }
        for file in files {
            guard let data = FileManager.default.contents(atPath: file) else { continue }
            let started = ContinuousClock.now
            let outcome = target.run([UInt8](data))
            print("\(target.name)\t\(file)\t\(ContinuousClock.now - started)\t\(outcome)")
        }
    }

    static func usage(_ problem: String?) -> Never {
        if let problem { FileHandle.standardError.write(Data("sextant-fuzz: \(problem)\n".utf8)) }
        FileHandle.standardError.write(
            Data(
                """
                usage: sextant-fuzz --list
                       sextant-fuzz <target> <file or folder>...
                       sextant-fuzz --all <folder with one subfolder per target>...

                """.utf8))
        exit(problem == nil ? 0 : 2)
    }
}

#endif
