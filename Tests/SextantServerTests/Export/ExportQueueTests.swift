import Foundation
import Testing

@testable import SextantServer

@Suite struct ExportQueueTests {
    func folder() -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("sextant-rw-\(UUID().uuidString)")
    }

    @Test func segmentsComeBackOldestFirstAndOutliveARestart() throws {
        let folder = folder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let queue = try ExportQueue(folder: folder, maxBytes: 1 << 20)
        try queue.append(body: [1, 2, 3], records: 3)
        try queue.append(body: [4, 5], records: 2)
        let first = try #require(queue.oldest())
        #expect(first.body == [1, 2, 3])
        #expect(first.records == 3)
        queue.remove(first.sequence)
        // A crash mid-write leaves a temporary file, which the next start clears.
        try Data([9]).write(to: folder.appendingPathComponent("99.rw.tmp"))

        let reopened = try ExportQueue(folder: folder, maxBytes: 1 << 20)
        #expect(reopened.segmentCount == 1)
        #expect(reopened.oldest()?.body == [4, 5])
        #expect(reopened.oldest()?.records == 2)
        try reopened.append(body: [6], records: 1)
        #expect(reopened.segmentCount == 2)
        #expect(!FileManager.default.fileExists(atPath: folder.appendingPathComponent("99.rw.tmp").path))
        // New segments number on from the old ones.
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted()
        #expect(names == ["2.rw", "3.rw"])
    }

    @Test func pastItsBoundTheOldestAreDroppedAndCounted() throws {
        let folder = folder()
        defer { try? FileManager.default.removeItem(at: folder) }
        // Each segment takes 4 + 100 bytes: the bound keeps three.
        let queue = try ExportQueue(folder: folder, maxBytes: 320)
        var dropped = 0
        for i in 0..<5 { dropped += try queue.append(body: [UInt8](repeating: UInt8(i), count: 100), records: 10 + i) }
        #expect(queue.segmentCount == 3)
        #expect(queue.byteCount == 312)
        #expect(dropped == 10 + 11)
        #expect(queue.oldest()?.body.first == 2)
    }

    @Test func severalOldestSegmentsComeTogetherWithinABound() throws {
        let folder = folder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let queue = try ExportQueue(folder: folder, maxBytes: 1 << 20, fileExtension: "traces")
        for i in 0..<4 { try queue.append(body: [UInt8](repeating: UInt8(i), count: 100), records: i + 1) }
        // 104 bytes a segment on disk: 250 takes two; a bound below one segment still takes one.
        #expect(queue.oldest(maxBytes: 250).map(\.records) == [1, 2])
        #expect(queue.oldest(maxBytes: 10).map(\.records) == [1])
        #expect(queue.oldest(maxBytes: 1 << 20).map(\.records) == [1, 2, 3, 4])
        #expect(queue.oldestQueuedAt() != nil)
        // Another kind's queue in the same folder does not see these segments.
        #expect(try ExportQueue(folder: folder, maxBytes: 1 << 20, fileExtension: "logs").segmentCount == 0)
        for segment in queue.oldest(maxBytes: 1 << 20) { queue.remove(segment.sequence) }
        #expect(queue.oldest(maxBytes: 1 << 20).isEmpty)
        #expect(queue.oldestQueuedAt() == nil)
    }

    @Test func folderNamesAreStableAndSafe() {
        let a = RemoteWriteExporter.folderName("http://127.0.0.1:8428/api/v1/write")
        #expect(a == RemoteWriteExporter.folderName("http://127.0.0.1:8428/api/v1/write"))
        #expect(a != RemoteWriteExporter.folderName("http://127.0.0.1:9090/api/v1/write"))
        #expect(a.hasPrefix("127.0.0.1-"))
        #expect(!a.contains("/"))
    }
}
