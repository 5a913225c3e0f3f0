import NIOCore
import NIOPosix

/// Waits until `due` on the event loop the caller runs on (NIO's timer, in the loop's own
/// `epoll_wait`), or on the clock when the caller is not on an event loop.
func pace(until due: ContinuousClock.Instant, clock: ContinuousClock) async {
    let wait = clock.now.duration(to: due)
    guard wait > .zero else { return }
    guard let eventLoop = MultiThreadedEventLoopGroup.currentEventLoop else {
        try? await clock.sleep(until: due)
        return
    }
    let nanoseconds = wait.components.seconds * 1_000_000_000 + wait.components.attoseconds / 1_000_000_000
    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
        eventLoop.scheduleTask(in: .nanoseconds(nanoseconds)) { continuation.resume() }
    }
}
