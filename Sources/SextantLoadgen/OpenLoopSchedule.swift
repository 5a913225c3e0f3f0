/// When each request of an open-loop run is due: requests carry different record counts (a round
/// of the simulated mesh gives every sidecar its own batch), and the schedule spaces them so that
/// records, not requests, arrive at the target rate.
///
/// Request `i` is due at the time the records before it take at `recordsPerSecond`; a request is
/// sent when due whatever earlier answers did, and its latency counts from that time (no
/// coordinated omission: a late send is the server's delay, not the generator's).
package struct OpenLoopSchedule: Sendable, Hashable {
    /// Records of the requests of one round, in order; the schedule repeats them.
    package var recordsPerRequest: [Int]
    package var recordsPerSecond: Double

    package init(recordsPerRequest: [Int], recordsPerSecond: Double) {
        precondition(!recordsPerRequest.isEmpty && recordsPerRequest.allSatisfy { $0 > 0 } && recordsPerSecond > 0)
        self.recordsPerRequest = recordsPerRequest
        self.recordsPerSecond = recordsPerSecond
    }

    private var recordsPerRound: Int { recordsPerRequest.reduce(0, +) }

    /// Records sent before request `index`.
    package func recordsBefore(_ index: Int) -> Int {
        let (round, position) = index.quotientAndRemainder(dividingBy: recordsPerRequest.count)
        return round * recordsPerRound + recordsPerRequest[..<position].reduce(0, +)
    }

    /// Seconds after the start at which request `index` is due.
    package func due(_ index: Int) -> Double {
        Double(recordsBefore(index)) / recordsPerSecond
    }

    /// Requests due before `seconds` have passed.
    package func requests(within seconds: Double) -> Int {
        let perRound = recordsPerRequest.count
        let roundSeconds = Double(recordsPerRound) / recordsPerSecond
        var index = max(0, Int(seconds / roundSeconds) - 1) * perRound
        while due(index) < seconds { index += 1 }
        return index
    }

    /// Rates stepped up by `factor` from `start`, `count` of them.
    package static func steps(from start: Double, factor: Double, count: Int) -> [Double] {
        precondition(start > 0 && factor > 1 && count > 0)
        var rates: [Double] = []
        var rate = start
        for _ in 0..<count {
            rates.append(rate.rounded())
            rate *= factor
        }
        return rates
    }
}
