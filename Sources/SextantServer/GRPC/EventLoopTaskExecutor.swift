package import NIOCore
import NIOPosix

/// Runs tasks on NIO's event loops: a job runs on the event loop that woke it, or on the group's
/// next one when woken from elsewhere. The gRPC server's tasks run so (a call's bytes, its decoding
/// and its answer stay on its stream's loop instead of hopping to the global pool and back for every
/// message; the writer's commit wakes the next loop), and so do the load generator's connections
/// (no hop to send or to read an answer, on the cores it shares with the server it measures).
package final class EventLoopTaskExecutor: TaskExecutor {
    let group: any EventLoopGroup

    package init(_ group: any EventLoopGroup) {
        self.group = group
    }

    package func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        let eventLoop = MultiThreadedEventLoopGroup.currentEventLoop ?? group.next()
        eventLoop.execute { job.runSynchronously(on: executor) }
    }
}
