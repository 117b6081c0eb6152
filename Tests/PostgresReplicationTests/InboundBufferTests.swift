import Testing
@testable import PostgresReplication

/// The hand-off from the event loop to the stream's consumer: a waiting consumer is woken at
/// once for what it must not wait for (a commit, a keepalive, anything but a message inside a
/// transaction), otherwise only once ``InboundBuffer/wakeBytes`` are buffered.
@Suite struct InboundBufferTests {
    /// Waits (polling, bounded) until a consumer waits in `takeAll`.
    private func untilWaiting(_ buffer: InboundBuffer<Int>) async throws {
        for _ in 0..<2_000 where !buffer.hasWaitingConsumer { try await Task.sleep(for: .milliseconds(1)) }
        try #require(buffer.hasWaitingConsumer)
    }

    @Test func aWaitingConsumerSleepsThroughMessagesInsideATransactionUntilOneEndsIt() async throws {
        let buffer = InboundBuffer<Int>(highWatermark: 1 << 20) {}
        let consumer = Task { try await buffer.takeAll().map(Array.init) }
        try await untilWaiting(buffer)
        buffer.append(contentsOf: [1, 2], bytes: 200, wake: false)
        #expect(buffer.hasWaitingConsumer, "two changes of an open transaction do not wake the consumer")
        buffer.append(contentsOf: [3], bytes: 100, wake: true)
        #expect(!buffer.hasWaitingConsumer)
        #expect(try await consumer.value == [1, 2, 3], "the commit brings everything buffered, in order")
    }

    @Test func enoughBytesWakeTheConsumerWithoutAnEnd() async throws {
        let buffer = InboundBuffer<Int>(highWatermark: 1 << 20) {}
        let consumer = Task { try await buffer.takeAll().map(Array.init) }
        try await untilWaiting(buffer)
        buffer.append(contentsOf: [1], bytes: InboundBuffer<Int>.wakeBytes - 1, wake: false)
        #expect(buffer.hasWaitingConsumer)
        buffer.append(contentsOf: [2], bytes: 1, wake: false)
        #expect(try await consumer.value == [1, 2])
    }

    @Test func aFullBufferWakesTheConsumerWhateverItsWatermark() async throws {
        // A buffer whose high watermark is below wakeBytes stops reading when full: its consumer
        // must be woken then, or neither side would move again.
        let buffer = InboundBuffer<Int>(highWatermark: 100) {}
        let consumer = Task { try await buffer.takeAll().map(Array.init) }
        try await untilWaiting(buffer)
        #expect(buffer.append(contentsOf: [1], bytes: 100, wake: false) == false, "reading pauses")
        #expect(try await consumer.value == [1])
    }

    @Test func aConsumerThatDoesNotWaitTakesWhatIsBufferedAtOnce() async throws {
        let buffer = InboundBuffer<Int>(highWatermark: 1 << 20) {}
        buffer.append(contentsOf: [1], bytes: 10, wake: false)
        #expect(try await buffer.takeAll().map(Array.init) == [1])
    }
}
