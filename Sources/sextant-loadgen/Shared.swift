import Synchronization

/// A counter that the tasks of a group share (an `Atomic` cannot be captured by a task).
final class SharedCounter: Sendable {
    private let value: Atomic<Int>

    init(_ initial: Int = 0) {
        value = Atomic(initial)
    }

    /// Adds `n`; returns the value before.
    @discardableResult
    func add(_ n: Int = 1) -> Int {
        value.add(n, ordering: .relaxed).oldValue
    }

    var current: Int { value.load(ordering: .relaxed) }
}

/// The first few error messages the tasks of a group meet.
final class ErrorSamples: Sendable {
    private let samples = Mutex<[String]>([])
    private let limit: Int

    init(limit: Int = 4) {
        self.limit = limit
    }

    func note(_ message: String) {
        samples.withLock { if $0.count < limit { $0.append(message) } }
    }

    var all: [String] { samples.withLock { $0 } }
}
