import NIOCore
import NIOPosix

/// Runs the generator's tasks on NIO's event loops: a job runs on the event loop that woke it (its
/// connection's, or the one its pacing timer fired on), or on the group's next one when woken from
/// elsewhere. The generator shares the machine with the server it measures, so each request should
/// cost it as few thread wake-ups as it can: no hop to the global pool to send or to read the answer.
final class EventLoopGroupTaskExecutor: TaskExecutor {
    let group: any EventLoopGroup

    init(_ group: any EventLoopGroup) {
        self.group = group
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        let eventLoop = MultiThreadedEventLoopGroup.currentEventLoop ?? group.next()
        eventLoop.execute { job.runSynchronously(on: executor) }
    }
}

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
