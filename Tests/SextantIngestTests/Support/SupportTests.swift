import CompressNIO
import NIOCore
import SextantIngest
import SextantModel
import Testing

@Suite struct TimestampTests {
    @Test(arguments: [
        ("1970-01-01T00:00:00Z", Int64(0)),
        ("2026-11-26T15:27:30.714Z", Int64(1_795_706_850_714_000)),
        ("2026-11-26T16:27:30.714+01:00", Int64(1_795_706_850_714_000)),
        ("2000-02-29T12:00:00.000001Z", Int64(951_825_600_000_001)),
    ])
    func parsesRFC3339(text: String, micros: Int64) {
        #expect(Timestamp.micros(rfc3339: text) == micros)
    }

    @Test(arguments: ["", "2026-11-26", "2026-13-01T00:00:00Z", "2026-11-26T15:27:30.Z", "2026-11-26T15:27:30Zjunk"])
    func rejectsOtherText(text: String) {
        #expect(Timestamp.micros(rfc3339: text) == nil)
    }
}

@Suite struct BodyDecompressorTests {
    @Test func inflatesGzipWithinTheLimit() throws {
        var plain = ByteBuffer(string: String(repeating: "[]", count: 1000))
        let gzipped = try plain.compress(with: .gzip())
        let body = try BodyDecompressor.decode(gzipped, contentEncoding: "gzip", limit: 10_000)
        #expect(body.readableBytes == 2000)
    }

    @Test func refusesABodyThatInflatesPastTheLimit() throws {
        var plain = ByteBuffer(repeating: 0x20, count: 1 << 20)
        let bomb = try plain.compress(with: .gzip())
        #expect(bomb.readableBytes < 5000)
        #expect {
            try BodyDecompressor.decode(bomb, contentEncoding: "gzip", limit: 64 << 10)
        } throws: { ($0 as? DecodeError)?.code == .decompressedTooLarge }
    }

    @Test func refusesCorruptGzipAndUnknownEncodings() {
        #expect {
            try BodyDecompressor.decode(ByteBuffer(string: "not gzip"), contentEncoding: "gzip", limit: 1000)
        } throws: { ($0 as? DecodeError)?.code == .malformed }
        #expect {
            try BodyDecompressor.decode(ByteBuffer(string: "x"), contentEncoding: "br", limit: 1000)
        } throws: { ($0 as? DecodeError)?.code == .unsupportedContentType }
    }
}

@Suite struct SharedMemoTests {
    @Test func makesEachValueOnceAndStartsOverWhenFull() {
        let memo = SharedMemo<Int, String>(limit: 3)
        var made: [Int] = []
        func value(_ key: Int) -> String { memo.value(key) { made.append($0); return "v\($0)" } }
        #expect([1, 2, 1, 3, 2].map(value) == ["v1", "v2", "v1", "v3", "v2"])
        #expect(made == [1, 2, 3])
        // A fourth key fills it past its limit: it forgets the rest and remembers only the new one.
        #expect(value(4) == "v4")
        #expect(value(4) == "v4")
        #expect(value(1) == "v1")
        #expect(made == [1, 2, 3, 4, 1])
    }

    @Test func parsedNodeIdentitiesMatchParsingEachTime() {
        let ids = ["sidecar~10.0.0.7~reviews-v2-7d8f9c6b4d-x2k9p.default~default.svc.cluster.local", "not a node id", ""]
        for id in ids + ids {
            #expect(NodeIdentity.parsed(nodeID: id) == NodeIdentity(nodeID: id))
        }
    }
}
