@testable import SextantStore
import Testing

@Suite struct Int64MapTests {
    /// SplitMix64, so that a failure repeats.
    private struct Generator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    @Test(arguments: [(keys: Int64(64), label: "few keys, many collisions"), (keys: Int64(1 << 40), label: "spread keys")])
    func agreesWithADictionaryOverInsertsUpdatesAndRemovals(keys: Int64, label: String) {
        var rng = Generator(state: UInt64(keys))
        var map = Int64Map()
        var expected: [Int64: Int64] = [:]
        for step in 0..<20_000 {
            // Sequential keys as row ids are, or random ones as hashes are.
            let key = step % 3 == 0 ? Int64(step / 3) % keys : Int64.random(in: -keys..<keys, using: &rng)
            switch UInt8.random(in: 0..<3, using: &rng) {
            case 0, 1:
                let value = Int64.random(in: 0..<1_000_000, using: &rng)
                #expect(map.updateValue(value, forKey: key) == expected.updateValue(value, forKey: key), "\(label)")
            default:
                #expect(map.removeValue(forKey: key) == expected.removeValue(forKey: key), "\(label)")
            }
        }
        #expect(map.count == expected.count)
        for (key, value) in expected { #expect(map[key] == value) }
        for key in expected.keys { map.removeValue(forKey: key) }
        #expect(map.count == 0)
        #expect(map[expected.keys.first ?? 0] == nil)
    }

    @Test func removesOnlyTheValueItWasToldOf() {
        var map = Int64Map()
        map.updateValue(7, forKey: 1)
        map.remove(1, ifValueIs: 8)
        #expect(map[1] == 7)
        map.remove(1, ifValueIs: 7)
        #expect(map[1] == nil)
    }
}
