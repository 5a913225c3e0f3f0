import Foundation
import Synchronization

/// Where Sextant reads the time of day wherever the time decides what happens: the skew limit on
/// records, when calls are counted into Istio's series, query windows that end now, retention and
/// compaction. `system` reads the machine's clock; tests set theirs (`ManualClock`) instead of
/// sleeping.
package struct WallClock: Sendable {
    private let read: @Sendable () -> Int64

    /// A clock that answers `read()` in microseconds since the Unix epoch.
    package init(microseconds read: @escaping @Sendable () -> Int64) {
        self.read = read
    }

    package static let system = WallClock { Int64((Date().timeIntervalSince1970 * 1_000_000).rounded()) }

    /// Microseconds since the Unix epoch.
    package var nowMicros: Int64 { read() }

    /// Milliseconds since the Unix epoch, rounded down.
    package var nowMillis: Int64 { Self.floorDivide(read(), 1000) }

    /// Seconds since the Unix epoch.
    package var nowSeconds: Double { Double(read()) / 1_000_000 }

    private static func floorDivide(_ a: Int64, _ b: Int64) -> Int64 {
        let q = a / b
        return a % b < 0 ? q - 1 : q
    }
}

/// A clock that stands still until it is set or moved: for tests.
package final class ManualClock: Sendable {
    private let micros: Mutex<Int64>

    package init(seconds: Double) {
        micros = Mutex(Int64((seconds * 1_000_000).rounded()))
    }

    package var clock: WallClock { WallClock { self.micros.withLock { $0 } } }

    package func advance(seconds: Double) {
        micros.withLock { $0 += Int64((seconds * 1_000_000).rounded()) }
    }

    package func set(seconds: Double) {
        micros.withLock { $0 = Int64((seconds * 1_000_000).rounded()) }
    }
}
