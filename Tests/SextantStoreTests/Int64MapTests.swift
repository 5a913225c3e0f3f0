@testable import SextantStore
import Testing

@Suite struct Int64MapTests {
    /// The `n`th of a fixed sequence of well-mixed words, so that a failure repeats.
    private func word(_ n: Int) -> UInt64 {
        let m = UInt64(n + 1) &* 0xD6E8_FEB8_6659_FD93
        return (m ^ (m >> 32)) &* 0xD6E8_FEB8_6659_FD93
    }

    @Test(arguments: [(keys: Int64(64), label: "few keys, many collisions"), (keys: Int64(1 << 40), label: "spread keys")])
    func agreesWithADictionaryOverInsertsUpdatesAndRemovals(keys: Int64, label: String) {
        var map = Int64Map()
        var expected: [Int64: Int64] = [:]
        for step in 0..<20_000 {
            // Sequential keys as row ids are, or random ones as hashes are.
            let random = word(step)
            let key = step % 3 == 0 ? Int64(step / 3) % keys : Int64(bitPattern: random) % keys
            switch random >> 60 {
            case 0..<11:
                let value = Int64(random >> 40)
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

    @Test(arguments: [Int64(64), Int64(1 << 40)])
    func removesEveryEntryWhoseValueItPicksInOnePass(keys: Int64) {
        var map = Int64Map()
        var expected: [Int64: Int64] = [:]
        for step in 0..<5_000 {
            let key = Int64(bitPattern: word(step)) % keys
            map.updateValue(Int64(step), forKey: key)
            expected[key] = Int64(step)
            // Every so often drop the entries below a moving line, as the index drops calls gone.
            if step % 700 == 699 {
                let line = Int64(step - 400)
                map.removeAll { $0 < line }
                expected = expected.filter { $0.value >= line }
                #expect(map.count == expected.count)
            }
        }
        for (key, value) in expected { #expect(map[key] == value) }
        #expect(map.isFull == false)
        map.removeAll { _ in true }
        #expect(map.count == 0)
        for key in expected.keys { #expect(map[key] == nil) }
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
