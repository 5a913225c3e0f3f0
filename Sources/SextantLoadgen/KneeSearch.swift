/// The rates one channel is stepped through: up a ladder to the first rate that fails, then
/// `refineSteps` rates between the highest that passed and the lowest that failed, each at their
/// geometric mean, so that the knee is known within `factor^(1/2^refineSteps)` rather than a whole
/// step of the ladder.
package struct KneeSearch: Sendable {
    private var ladder: ArraySlice<Double>
    private var refinementsLeft: Int
    /// The highest rate that passed and the lowest that failed, so far.
    package private(set) var highestPassed: Double?
    package private(set) var lowestFailed: Double?

    package init(ladder: [Double], refineSteps: Int) {
        self.ladder = ladder[...]
        refinementsLeft = refineSteps
    }

    /// The next rate to run, or nil when the search is over.
    package mutating func next() -> Double? {
        guard let failed = lowestFailed else { return ladder.popFirst() }
        // Nothing passed: no knee to refine.
        guard refinementsLeft > 0, let passed = highestPassed else { return nil }
        refinementsLeft -= 1
        return (passed * failed).squareRoot().rounded()
    }

    /// What a rate's step gave.
    package mutating func record(_ rate: Double, passed: Bool) {
        if passed {
            highestPassed = max(highestPassed ?? rate, rate)
        } else {
            lowestFailed = min(lowestFailed ?? rate, rate)
        }
    }
}
