import NIOCore
import PostgresWire
import Synchronization

/// Frames the server's bytes into backend messages and hands them to the connection's
/// `InboundBuffer`, holding socket reads while that buffer is full.
///
/// It does two things on the event loop itself, independent of how fast the consumer is:
/// it answers the one-byte reply to an SSLRequest, and while a replication stream runs it
/// answers keepalives that ask for a reply and sends standby status updates on a timer — so
/// a slow destination never makes the server's `wal_sender_timeout` fire.
final class PGChannelHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private enum Phase {
        case awaitingSSLResponse(EventLoopPromise<UInt8>)
        case messages
    }

    private let inbound: InboundBuffer<BackendMessage>
    private var phase: Phase = .messages
    private var cumulation: ByteBuffer?
    private var decoder: BackendMessageDecoder
    private var readHeld = false
    private var pending: [BackendMessage] = []
    private var pendingBytes = 0
    /// A pending message the consumer must not wait for (see ``InboundBuffer/append(contentsOf:bytes:wake:)``).
    private var pendingWakes = false
    private var replication: ReplicationFeedback?
    private var statusTimer: RepeatedTask?
    private var failed = false
    private var receivedInRead: UInt64 = 0

    init(inbound: InboundBuffer<BackendMessage>, decoder: BackendMessageDecoder = BackendMessageDecoder()) {
        self.inbound = inbound
        self.decoder = decoder
    }

    // MARK: Control, called on the event loop through `NIOLoopBound`

    func expectSSLResponse(_ promise: EventLoopPromise<UInt8>) {
        phase = .awaitingSSLResponse(promise)
    }

    /// Starts answering keepalives and sending status updates every `interval`, and soon after
    /// the consumer confirms a new position (at most every ``confirmationGap``): the slot
    /// follows what is durable closely, as a native subscriber's does, instead of up to
    /// `interval` behind.
    func startReplicationFeedback(_ feedback: ReplicationFeedback, interval: TimeAmount, context: ChannelHandlerContext) {
        replication = feedback
        statusTimer?.cancel()
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        statusTimer = context.eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in
            guard let context = handler.value.context else { return }
            handler.value.sendStatus(context: context, replyRequested: false)
        }
        let loop = context.eventLoop
        feedback.onConfirm {
            loop.execute { handler.value.reportConfirmation() }
        }
    }

    static let confirmationGap = TimeAmount.milliseconds(10)
    private var lastStatusAt = NIODeadline.uptimeNanoseconds(0)
    private var confirmationScheduled = false

    /// A newly confirmed position: reported now, or once ``confirmationGap`` has passed since
    /// the last status update.
    private func reportConfirmation() {
        guard replication != nil, !confirmationScheduled, let context else { return }
        let due = lastStatusAt + Self.confirmationGap
        guard due > .now() else {
            sendStatus(context: context, replyRequested: false)
            return
        }
        confirmationScheduled = true
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        context.eventLoop.scheduleTask(deadline: due) {
            handler.value.confirmationScheduled = false
            guard let context = handler.value.context, let feedback = handler.value.replication,
                  feedback.flushed > feedback.lastSentFlushed else { return }
            handler.value.sendStatus(context: context, replyRequested: false)
        }
    }

    /// Sends one status update now (for the final update before CopyDone) and stops the timer.
    func stopReplicationFeedback(sendFinal: Bool, context: ChannelHandlerContext) {
        statusTimer?.cancel()
        statusTimer = nil
        if sendFinal { sendStatus(context: context, replyRequested: false) }
        replication?.onConfirm(nil)
        replication = nil
    }

    private(set) var context: ChannelHandlerContext?

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func handlerRemoved(context: ChannelHandlerContext) {
        statusTimer?.cancel()
        replication?.onConfirm(nil)
        self.context = nil
    }

    // MARK: Inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        guard !failed else { return }
        if case .awaitingSSLResponse(let promise) = phase {
            phase = .messages
            guard let answer = bytes.readInteger(as: UInt8.self) else { return }
            guard bytes.readableBytes == 0 else {
                // Bytes after the one-byte answer would be read as if they came over TLS:
                // the "buffer stuffing" attack (CVE-2021-23222). Refuse.
                promise.fail(PGConnectionError(.protocolViolation,
                    "the server sent \(bytes.readableBytes) unexpected bytes after its answer to the SSL request",
                    fix: "check that the host and port are a PostgreSQL server and that nothing sits in between"))
                return
            }
            promise.succeed(answer)
            return
        }
        if cumulation == nil || cumulation!.readableBytes == 0 {
            cumulation = bytes
        } else {
            cumulation!.writeBuffer(&bytes)
        }
        decodeAvailable(context: context)
    }

    private func decodeAvailable(context: ChannelHandlerContext) {
        guard var buffer = cumulation else { return }
        cumulation = nil
        do {
            while let message = try decoder.next(from: &buffer) {
                if let replication, case .copyData(let payload) = message {
                    if observeReplicationFrame(payload, feedback: replication, context: context) { pendingWakes = true }
                } else {
                    pendingWakes = true
                }
                pendingBytes += Self.size(of: message)
                pending.append(message)
            }
        } catch {
            fail(PGConnectionError(.protocolViolation, "the server sent a malformed message: \(error)",
                                   fix: "check that the host and port are a PostgreSQL server", underlying: error),
                 context: context)
            return
        }
        if buffer.readableBytes > 0 {
            // Keep the partial message; let a large buffer shrink once it is mostly consumed.
            if buffer.readerIndex > 1 << 16 && buffer.readerIndex > buffer.readableBytes { buffer.discardReadBytes() }
            cumulation = buffer
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flushPending()
        context.fireChannelReadComplete()
    }

    private func flushPending() {
        if receivedInRead != 0, let replication {
            replication.received(LSN(receivedInRead))
            receivedInRead = 0
        }
        guard !pending.isEmpty else { return }
        inbound.append(contentsOf: pending, bytes: pendingBytes, wake: pendingWakes)
        pending.removeAll(keepingCapacity: true)
        pendingBytes = 0
        pendingWakes = false
    }

    /// Keepalives are answered here, at once, whatever the consumer's backlog. Returns whether
    /// a consumer waiting for messages is to be woken for this one: not for a pgoutput message
    /// inside a transaction (Begin, a change, Relation, Type, Origin, Stream Start), since
    /// nothing can be confirmed before what ends it (Commit, Stream Stop, …) comes.
    private func observeReplicationFrame(_ payload: ByteBuffer, feedback: ReplicationFeedback, context: ChannelHandlerContext) -> Bool {
        guard let tag = payload.getInteger(at: payload.readerIndex, as: UInt8.self) else { return true }
        switch tag {
        case UInt8(ascii: "w"):
            // Recorded once per read (in flushPending), not per message.
            if let walStart = payload.getInteger(at: payload.readerIndex + 1, as: UInt64.self), walStart > receivedInRead {
                receivedInRead = walStart
            }
            // The pgoutput message follows the frame's 25-byte header (tag, three positions).
            switch payload.getInteger(at: payload.readerIndex + 25, as: UInt8.self) {
            case UInt8(ascii: "B"), UInt8(ascii: "I"), UInt8(ascii: "U"), UInt8(ascii: "D"), UInt8(ascii: "T"),
                 UInt8(ascii: "R"), UInt8(ascii: "Y"), UInt8(ascii: "O"), UInt8(ascii: "S"):
                return false
            default:
                return true
            }
        case UInt8(ascii: "k"):
            guard payload.readableBytes >= 18,
                  let walEnd = payload.getInteger(at: payload.readerIndex + 1, as: UInt64.self),
                  let reply = payload.getInteger(at: payload.readerIndex + 17, as: UInt8.self)
            else { return true }
            feedback.received(LSN(walEnd))
            if reply != 0 { sendStatus(context: context, replyRequested: false) }
            return true
        default:
            return true
        }
    }

    private func sendStatus(context: ChannelHandlerContext, replyRequested: Bool) {
        guard let feedback = replication, context.channel.isActive else { return }
        let flushed = feedback.flushed
        let update = StandbyStatusUpdate(written: max(feedback.written, flushed), flushed: flushed, applied: flushed,
                                         clock: .now, replyRequested: replyRequested)
        var buffer = context.channel.allocator.buffer(capacity: 1 + 4 + StandbyStatusUpdate.payloadLength)
        update.encodeAsCopyData(into: &buffer)
        feedback.statusSent(flushed)
        lastStatusAt = .now()
        context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
    }

    static func size(of message: BackendMessage) -> Int {
        switch message {
        case .copyData(let payload): return payload.readableBytes + 5
        case .dataRow(let row): return row.columns.reduce(16) { $0 + ($1?.readableBytes ?? 0) + 4 }
        default: return 64
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        statusTimer?.cancel()
        replication?.onConfirm(nil)
        if case .awaitingSSLResponse(let promise) = phase {
            phase = .messages
            promise.fail(PGConnectionError(.connectionClosed, "the server closed the connection during the SSL request"))
        }
        decodeAvailable(context: context)
        flushPending()
        inbound.finish(PGConnectionError(.connectionClosed, "the server closed the connection",
                                         fix: "look at the server log; the connection may have been terminated or the server restarted"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(error, context: context)
    }

    private func fail(_ error: any Error, context: ChannelHandlerContext) {
        guard !failed else { return }
        failed = true
        statusTimer?.cancel()
        if case .awaitingSSLResponse(let promise) = phase {
            phase = .messages
            promise.fail(error)
        }
        flushPending()
        inbound.finish(error)
        context.close(promise: nil)
    }

    // MARK: Outbound

    func read(context: ChannelHandlerContext) {
        if inbound.isReadingPaused {
            readHeld = true
        } else {
            readHeld = false
            context.read()
        }
    }
}

/// Positions shared between the replication stream's consumer and the event loop.
///
/// `flushed` is what the consumer confirmed durable (it only moves forward); `written` is the
/// furthest WAL position received. Status updates report both.
public final class ReplicationFeedback: Sendable {
    private let writtenValue = ManagedAtomicLSN()
    private let flushedValue = ManagedAtomicLSN()
    private let lastSentValue = ManagedAtomicLSN()
    private let sentCount = Atomic<Int>(0)

    public init(flushed: LSN = .invalid) {
        flushedValue.raise(to: flushed)
    }

    /// The furthest position received from the server.
    public var written: LSN { writtenValue.load() }
    /// The position confirmed durable: what the next status update reports as flushed.
    public var flushed: LSN { flushedValue.load() }
    /// The flushed position carried by the last status update that was sent.
    public var lastSentFlushed: LSN { lastSentValue.load() }

    /// Confirms that everything up to `lsn` is durable. Positions never move backwards.
    public func confirmFlushed(_ lsn: LSN) {
        if flushedValue.raise(to: lsn), let confirmed = onConfirmed.withLock({ $0 }) { confirmed.call() }
    }

    /// Called after a confirmation moved the position (the channel handler reports it soon).
    /// The closure sits in a struct: a bare function type in the generic Mutex would be
    /// re-wrapped in a conversion thunk at every `withLock` (the chain grew with each call).
    private struct Notification: Sendable { let call: @Sendable () -> Void }
    private let onConfirmed = Mutex<Notification?>(nil)
    func onConfirm(_ body: (@Sendable () -> Void)?) { onConfirmed.withLock { $0 = body.map(Notification.init) } }

    func received(_ lsn: LSN) { writtenValue.raise(to: lsn) }
    /// How many status updates were sent.
    public var statusUpdatesSent: Int { sentCount.load(ordering: .relaxed) }

    func statusSent(_ flushed: LSN) {
        lastSentValue.raise(to: flushed)
        sentCount.add(1, ordering: .relaxed)
    }
}


final class ManagedAtomicLSN: Sendable {
    private let value = Atomic<UInt64>(0)
    func load() -> LSN { LSN(value.load(ordering: .acquiring)) }
    /// Raises the value to `lsn`; returns whether it moved.
    @discardableResult
    func raise(to lsn: LSN) -> Bool {
        var current = value.load(ordering: .relaxed)
        while current < lsn.rawValue {
            let (exchanged, original) = value.compareExchange(expected: current, desired: lsn.rawValue,
                                                              ordering: .acquiringAndReleasing)
            if exchanged { return true }
            current = original
        }
        return false
    }
}
