import Foundation
import SextantFuzz
import Testing

/// `Tests/Fuzz`: `corpus/<target>/` holds hand-made seeds, `regressions/<target>/` every input a
/// fuzz run found crashing, hanging or exhausting memory. Each must now decode or be refused.
private let fuzzFolder = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fuzz")

/// Every file under `Tests/Fuzz/<kind>/<target>/`, as (target, file) pairs.
private func inputs(_ kind: String) -> [(String, String)] {
    let root = fuzzFolder.appendingPathComponent(kind)
    let folders = (try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? []
    return folders.sorted().flatMap { target in
        let folder = root.appendingPathComponent(target).path
        let files = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        return files.filter { !$0.hasPrefix(".") }.sorted().map { (target, "\(kind)/\(target)/\($0)") }
    }
}

@Suite struct FuzzTargetTests {
    @Test func namesAreUnique() {
        #expect(Set(FuzzTarget.all.map(\.name)).count == FuzzTarget.all.count)
    }

    @Test func everyCorpusFolderNamesATarget() {
        for kind in ["corpus", "regressions"] {
            let root = fuzzFolder.appendingPathComponent(kind)
            // A missing or empty folder is a failure, not a pass with nothing checked.
            let folders = ((try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? []).filter { !$0.hasPrefix(".") }
            #expect(!folders.isEmpty, "Tests/Fuzz/\(kind) is missing or empty")
            for folder in folders {
                #expect(FuzzTarget.named(folder) != nil, "Tests/Fuzz/\(kind)/\(folder) names no fuzz target")
            }
        }
    }

    @Test func everyTargetHasSeeds() {
        let seeded = Set(inputs("corpus").map(\.0))
        for target in FuzzTarget.all {
            #expect(seeded.contains(target.name), "no seeds in Tests/Fuzz/corpus/\(target.name)")
        }
    }

    @Test(arguments: inputs("corpus"))
    func seedDecodesCleanly(target: String, file: String) throws {
        let input = try #require(FileManager.default.contents(atPath: fuzzFolder.appendingPathComponent(file).path))
        _ = try #require(FuzzTarget.named(target)).run([UInt8](input))
    }

    /// A past finding: it used to crash or hang its decoder; a run that returns at all passes.
    @Test(arguments: inputs("regressions"))
    func pastFindingDecodesCleanly(target: String, file: String) throws {
        let input = try #require(FileManager.default.contents(atPath: fuzzFolder.appendingPathComponent(file).path))
        let started = ContinuousClock.now
        _ = try #require(FuzzTarget.named(target)).run([UInt8](input))
        #expect(ContinuousClock.now - started < .seconds(5), "\(file) took too long")
    }
}

@Suite struct ProtobufWireMutatorTests {
    private var protobufSeeds: [(String, [UInt8])] {
        inputs("corpus").filter { FuzzTarget.named($0.0)?.isProtobuf == true }.compactMap { _, file in
            let data = FileManager.default.contents(atPath: fuzzFolder.appendingPathComponent(file).path)
            return data.map { (file, [UInt8]($0)) }
        }
    }

    @Test func readsAndWritesEverySeedByteForByte() throws {
        let seeds = protobufSeeds
        #expect(seeds.count >= 7)
        for (file, bytes) in seeds {
            let fields = try #require(ProtobufWireMutator.parse(bytes[...], depth: 0), "\(file)")
            #expect(ProtobufWireMutator.serialize(fields) == bytes, "\(file)")
        }
    }

    @Test func mutationsStayWellFormedAndWithinTheLimit() throws {
        var mutator = ProtobufWireMutator(seed: 7) { bytes, _ in bytes.reverse() }
        for (file, bytes) in protobufSeeds {
            var changed = 0
            for _ in 0..<200 {
                guard let output = mutator.mutate(bytes, maxSize: bytes.count + 64) else { continue }
                #expect(output.count <= bytes.count + 64)
                #expect(ProtobufWireMutator.parse(output[...], depth: 0) != nil, "\(file)")
                if output != bytes { changed += 1 }
            }
            #expect(changed > 100, "\(file)")
        }
    }

    @Test func refusesBytesThatAreNoMessage() {
        var mutator = ProtobufWireMutator(seed: 1) { _, _ in }
        #expect(mutator.mutate(Array("not a protobuf".utf8), maxSize: 100) == nil)
        #expect(mutator.mutate([], maxSize: 100) == nil)
    }
}
