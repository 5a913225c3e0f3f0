import Foundation
import SextantModel
@testable import SextantStore
import Testing

@Suite struct MetricChunkTests {
    @Test func chunksGiveBackEverySampleBitForBit() throws {
        var generator = SplitMix64(seed: 7)
        var samples: [(Int64, Double)] = []
        var time: Int64 = 1_795_698_000_000
        var counter = 0.0
        for i in 0..<2_000 {
            // Regular scrapes, jitter, long gaps, times that repeat and go back, and every kind of value.
            switch i % 9 {
            case 0: time += 15_000
            case 1: time += Int64.random(in: -3...3, using: &generator) + 15_000
            case 2: time += Int64.random(in: 0...100_000_000, using: &generator)
            case 3: time += 0
            case 4: time -= 20_000
            default: time += 15_000
            }
            counter += Double(Int.random(in: 0...5, using: &generator))
            let value: Double =
                switch i % 7 {
                case 0: counter
                case 1: -Double.random(in: 0...1e12, using: &generator)
                case 2: [Double.infinity, -.infinity, 0, -0.0, .leastNonzeroMagnitude, .greatestFiniteMagnitude][i % 6]
                case 3: Double.random(in: 0...1, using: &generator)
                default: counter
                }
            samples.append((time, value))
        }
        samples.append((.max, 1))
        samples.append((.min, 2))
        let bytes = SampleChunk.encode(samples)
        let back = try SampleChunk.decode(bytes)
        #expect(back.count == samples.count)
        #expect(zip(back, samples).allSatisfy { $0.0 == $1.0 && $0.1.bitPattern == $1.1.bitPattern })
        let none: [(Int64, Double)] = []
        #expect(try SampleChunk.decode(SampleChunk.encode(none)).isEmpty)
        let one: [(Int64, Double)] = [(5, 1.5)]
        #expect(try SampleChunk.decode(SampleChunk.encode(one)).map { $0.0 } == [5])
    }

    @Test func anAppenderKeepsSamplesAsTheyComeInTheStoredFormat() throws {
        var generator = SplitMix64(seed: 11)
        var appender = SampleChunk.Appender()
        var samples: [(Int64, Double)] = []
        for _ in 0..<500 {
            // Times that go back and forth, as a head sees out-of-order and resent samples.
            let sample = (Int64.random(in: 1_795_698_000_000...1_795_698_900_000, using: &generator), Double(Int.random(in: 0...9, using: &generator)))
            appender.append(sample.0, sample.1)
            samples.append(sample)
        }
        #expect(appender.count == 500)
        #expect(appender.samples().map(\.0) == samples.map(\.0))
        #expect(appender.samples().map(\.1) == samples.map(\.1))
        // A stored chunk is its count, then the same stream.
        #expect(Array(SampleChunk.encode(samples).dropFirst(4)) == appender.bits.bytes)
    }

    @Test func aScrapedCounterTakesAboutTwoBytesASample() throws {
        let samples: [(Int64, Double)] = (0..<120).map { i in
            let time = Int64(1_795_698_000_000) + Int64(i) * 15_000
            return (time, Double(1000 + i * 7))
        }
        let bytes = SampleChunk.encode(samples)
        #expect(bytes.count < 120 * 3)
        #expect(try SampleChunk.decode(bytes).map { $0.1 } == samples.map { $0.1 })
    }

    @Test func truncatedChunksAreRefused() throws {
        let bytes = SampleChunk.encode((0..<10).map { (Int64($0), Double($0) * 1.1) })
        #expect(throws: SpanBlock.FormatError.self) { try SampleChunk.decode(Array(bytes.dropLast(3))) }
    }

    @Test func appendsGiveBackTheirSamples() throws {
        var append = MetricAppend()
        append.samples = [
            .init(seriesID: 3, timeMs: 1000, value: 10, raw: 10, offset: 0, isDelta: false),
            .init(seriesID: 1, timeMs: 900, value: 17, raw: 2, offset: 15, isDelta: false),
            .init(seriesID: 9_000_000_000, timeMs: -5, value: -1.5, raw: -1.5, offset: 0, isDelta: true),
        ]
        #expect(try MetricAppend.decode(append.encoded()) == append)
        #expect(throws: SpanBlock.FormatError.self) { try MetricAppend.decode(Array(append.encoded().dropLast(2))) }
    }
}
