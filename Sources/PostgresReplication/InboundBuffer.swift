import NIOCore
import Synchronization

/// The hand-off from a channel's event loop to one async consumer, bounded in bytes.
///
/// The event loop appends elements with their size; once the buffered bytes reach the high
/// watermark, `append` answers `false` and the channel stops reading from the socket (TCP
/// then pushes back on the server). The consumer takes everything buffered at once, which
/// amortises locking over many messages; if reading was paused, `resumeReading` is called
/// then so the channel reads again. At most about twice the high watermark (plus one
/// message) is held: one buffer being filled, one batch being consumed.
final class InboundBuffer<Element: Sendable>: Sendable {
    private struct State {
        var elements = CircularBuffer<Element>(initialCapacity: 64)
        var bytes = 0
        var readingPaused = false
        var terminal: Result<Void, any Error>?
        var waiter: CheckedContinuation<Void, Never>?
        var interrupted = false
    }

    private enum Step { case batch(CircularBuffer<Element>, resume: Bool), done(Result<Void, any Error>), wait }

    private let state = Mutex(State())
    let highWatermark: Int
    static var wakeBytes: Int { 64 << 10 }
    private let resumeReading: @Sendable () -> Void

    init(highWatermark: Int, resumeReading: @escaping @Sendable () -> Void) {
        precondition(highWatermark > 0)
        self.highWatermark = highWatermark
        self.resumeReading = resumeReading
    }

    /// Producer side: appends several elements under one lock. Returns whether the producer
    /// may keep reading.
    ///
    /// `wake`: a consumer waiting for elements is woken now. Otherwise only once ``wakeBytes``
    /// are buffered: a large transaction then wakes its consumer once per some hundred rows
    /// instead of at every read of the few the server has just sent (each wake-up costs both
    /// threads a system call and a context switch).
    @discardableResult
    func append(contentsOf elements: [Element], bytes: Int, wake: Bool = true) -> Bool {
        guard !elements.isEmpty else { return !isReadingPaused }
        let (waiter, keepReading) = state.withLock { state -> (CheckedContinuation<Void, Never>?, Bool) in
            guard state.terminal == nil else { return (nil, false) }
            state.elements.append(contentsOf: elements)
            state.bytes += bytes
            if state.bytes >= highWatermark { state.readingPaused = true }
            guard wake || state.bytes >= min(Self.wakeBytes, highWatermark) else { return (nil, !state.readingPaused) }
            let waiter = state.waiter
            state.waiter = nil
            return (waiter, !state.readingPaused)
        }
        waiter?.resume()
        return keepReading
    }

    /// Whether the producer should hold its reads now.
    var isReadingPaused: Bool { state.withLock { $0.readingPaused } }

    /// Producer side: no more elements; `error` is thrown to the consumer after the buffered ones.
    func finish(_ error: (any Error)? = nil) {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if state.terminal == nil { state.terminal = error.map { .failure($0) } ?? .success(()) }
            let waiter = state.waiter
            state.waiter = nil
            return waiter
        }
        waiter?.resume()
    }

    /// Consumer side: everything buffered, waiting while empty; nil once finished and drained.
    func takeAll() async throws -> CircularBuffer<Element>? {
        while true {
            let step = state.withLock { state -> Step in
                if !state.elements.isEmpty {
                    let batch = state.elements
                    state.elements = CircularBuffer(initialCapacity: max(64, batch.count))
                    state.bytes = 0
                    let resume = state.readingPaused
                    state.readingPaused = false
                    return .batch(batch, resume: resume)
                }
                if let terminal = state.terminal { return .done(terminal) }
                if state.interrupted {
                    state.interrupted = false
                    return .batch(CircularBuffer(), resume: false)
                }
                return .wait
            }
            switch step {
            case .batch(let batch, let resume):
                if resume { resumeReading() }
                return batch
            case .done(let result):
                try result.get()
                return nil
            case .wait:
                try Task.checkCancellation()
                await withTaskCancellationHandler {
                    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                        let resumeNow = state.withLock { state -> Bool in
                            if !state.elements.isEmpty || state.terminal != nil || state.interrupted || Task.isCancelled { return true }
                            state.waiter = continuation
                            return false
                        }
                        if resumeNow { continuation.resume() }
                    }
                } onCancel: {
                    let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
                        defer { state.waiter = nil }
                        return state.waiter
                    }
                    waiter?.resume()
                }
            }
        }
    }

    /// Wakes a waiting consumer: its `takeAll` returns an empty batch (once).
    func interrupt() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.interrupted = true
            let waiter = state.waiter
            state.waiter = nil
            return waiter
        }
        waiter?.resume()
    }

    /// The error the producer finished with, if it did.
    var terminalError: (any Error)? {
        state.withLock { state in
            if case .failure(let error)? = state.terminal { return error }
            return nil
        }
    }

    /// Bytes buffered now (for metrics and tests).
    var bufferedBytes: Int { state.withLock { $0.bytes } }

    /// Whether a consumer waits in ``takeAll()`` now (for tests).
    var hasWaitingConsumer: Bool { state.withLock { $0.waiter != nil } }
}
