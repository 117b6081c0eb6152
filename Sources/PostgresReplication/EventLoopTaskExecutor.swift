import NIOCore
import NIOPosix

/// Runs a task's jobs on one SwiftNIO event loop (a task executor preference).
///
/// The replication stream is read on an event loop; a consumer that runs on the same loop, and
/// writes to a destination connection on the same loop, takes a small transaction from the
/// socket to the destination without handing it from thread to thread (each hand-off is a
/// wake-up, which on a busy machine costs more than the work itself).
public final class EventLoopTaskExecutor: TaskExecutor, Sendable {
    public let eventLoop: any EventLoop

    public init(_ eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    /// The executor of the stream being taken, while connections may be opened for it: a
    /// destination can put its connection on the same loop.
    @TaskLocal public static var current: EventLoopTaskExecutor?

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        eventLoop.execute {
            job.runSynchronously(on: self.asUnownedTaskExecutor())
        }
    }
}

extension PGConnection {
    /// An event loop of the group connections use by default (the next, in turn).
    public static func nextEventLoop() -> any EventLoop { MultiThreadedEventLoopGroup.singleton.next() }

    /// The event loop this connection's socket is served on.
    public var eventLoop: any EventLoop { channel.eventLoop }
}
