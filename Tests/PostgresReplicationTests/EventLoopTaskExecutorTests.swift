import NIOCore
import NIOPosix
import Testing
@testable import PostgresReplication

/// The task executor the pipeline takes small transactions on: jobs run on its event loop,
/// before and after suspensions, and child tasks inherit it; without the preference they do not.
@Suite struct EventLoopTaskExecutorTests {
    @Test func jobsRunOnTheEventLoopAcrossSuspensions() async throws {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let executor = EventLoopTaskExecutor(loop)
        let seen = try await withTaskExecutorPreference(executor) { () async throws -> [Bool] in
            var seen = [loop.inEventLoop]
            try await Task.sleep(for: .milliseconds(5))
            seen.append(loop.inEventLoop)
            await Task.yield()
            seen.append(loop.inEventLoop)
            // A future completed by the loop resumes the task on it too.
            try await loop.scheduleTask(in: .milliseconds(2)) {}.futureResult.get()
            seen.append(loop.inEventLoop)
            async let child = loop.inEventLoop
            seen.append(await child)
            return seen
        }
        #expect(seen == [true, true, true, true, true])
        let outside = await Task { loop.inEventLoop }.value
        #expect(!outside, "an unstructured task without the preference runs on the shared pool")
    }

    @Test func theCurrentExecutorIsATaskLocal() async {
        let executor = EventLoopTaskExecutor(MultiThreadedEventLoopGroup.singleton.next())
        #expect(EventLoopTaskExecutor.current == nil)
        let inside = EventLoopTaskExecutor.$current.withValue(executor) { EventLoopTaskExecutor.current === executor }
        #expect(inside)
        #expect(EventLoopTaskExecutor.current == nil)
    }
}
