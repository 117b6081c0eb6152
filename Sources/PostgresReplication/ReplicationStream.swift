import NIOCore
import PGOutput
import PostgresWire
import Synchronization

/// One decoded pgoutput message with the WAL positions of the XLogData that carried it.
public struct WALMessage: Sendable, Equatable {
    /// Where the message's WAL record starts.
    public var walStart: LSN
    /// The server's WAL end when it sent the message.
    public var walEnd: LSN
    /// When the server sent it.
    public var sendTime: PostgresTimestamp
    public var message: PGOutputMessage
}

/// The messages of a logical replication slot, decoded, in server order.
///
/// Backpressure is in bytes: the connection stops reading the socket while more than its
/// receive buffer limit waits for the consumer. Independently of the consumer, the event
/// loop sends standby status updates every `statusInterval` and at once when a keepalive asks
/// for one.
///
/// Report durable progress with ``confirmFlushed(_:)`` (or through ``feedback`` from another
/// task): confirm a transaction's `Commit.endLSN` (or `StreamCommit.endLSN`, `Prepare.endLSN`,
/// …) once it is durable. While nothing is in flight — no transaction open, every delivered
/// transaction confirmed — the stream confirms the position of each keepalive, so an idle
/// slot keeps advancing even while other databases or unpublished tables write WAL.
///
/// ``stop()`` sends a final status update and CopyDone, then hands the connection back.
extension PGOutputMessage {
    /// The LSN a consumer confirms once this message's unit is durable: the end of a
    /// transaction (Commit, Stream Commit, Prepare, Stream Prepare, Commit/Rollback Prepared)
    /// or the position of a non-transactional logical message. Nil for every other message.
    public var unitEndLSN: LSN? {
        switch self {
        case .commit(let commit): commit.endLSN
        case .streamCommit(let commit): commit.endLSN
        case .prepare(let prepare), .streamPrepare(let prepare): prepare.endLSN
        case .commitPrepared(let commit): commit.endLSN
        case .rollbackPrepared(let rollback): rollback.rollbackEndLSN
        case .message(let message) where !message.isTransactional: message.lsn
        default: nil
        }
    }
}

public final class ReplicationStream: AsyncSequence {
    public typealias Element = WALMessage

    public let connection: PGConnection
    public let feedback: ReplicationFeedback
    public let protocolVersion: Int
    private var decoder: PGOutputDecoder
    private var batch = CircularBuffer<BackendMessage>()
    private var finished = false

    // What has been delivered and not yet confirmed.
    private var inTransaction = false
    private var openStreamedTransactions: Set<UInt32> = []
    private var lastDeliveredEnd = LSN.invalid
    /// A keepalive at or past `endPosition` seen while something was in flight.
    private var endKeepalive: LSN?

    /// Every delivered transaction is confirmed and none is open.
    private var nothingInFlight: Bool {
        !inTransaction && openStreamedTransactions.isEmpty && feedback.flushed >= lastDeliveredEnd
    }

    /// Where to stop: after the unit (transaction, prepared transaction, standalone message)
    /// ending at or past it, or at a keepalive past it while nothing is in flight, `next()`
    /// returns nil. Like `pg_recvlogical --endpos`.
    public var endPosition: LSN?
    private var reachedEnd = false
    private var deliveredSinceIdle = false

    /// Ends `next()` from any task or a signal handler: it returns nil as soon as it can.
    /// Then call ``stop()`` to end the protocol cleanly.
    public let stopper: ReplicationStopper

    init(connection: PGConnection, feedback: ReplicationFeedback, protocolVersion: Int, parallelStreaming: Bool) {
        self.stopper = ReplicationStopper(inbound: connection.inbound)
        self.connection = connection
        self.feedback = feedback
        self.protocolVersion = protocolVersion
        self.decoder = PGOutputDecoder(protocolVersion: protocolVersion, parallelStreaming: parallelStreaming)
    }

    /// Whether more messages are already here (decoded or in the receive buffer): a consumer
    /// can batch while this is true and flush as soon as it turns false.
    public var hasBufferedMessages: Bool {
        !batch.isEmpty || connection.hasBufferedMessages
    }

    /// Confirms that everything up to `lsn` is durable; the next status update reports it.
    public func confirmFlushed(_ lsn: LSN) { feedback.confirmFlushed(lsn) }

    /// The next message, or nil once the server ended the stream (or after `stop()`).
    public func next() async throws -> WALMessage? {
        try await next(onIdle: nil)
    }

    /// The next message among those already received, without waiting: nil once they are used
    /// up, or when the next one needs ``next(onIdle:)`` (the end of the stream, a server error,
    /// a stop request). A consumer working through a backlog calls this first, and `next` only
    /// when it answers nil: one async call per batch instead of one per message (each call
    /// checks the task's executor twice, a few percent of a large transaction's CPU).
    public func nextReceived() throws -> WALMessage? {
        while !finished && !reachedEnd && !stopper.isRequested, case .copyData(let payload)? = batch.first {
            batch.removeFirst()
            if let decoded = try decodeFrame(payload) { return decoded }
        }
        return nil
    }

    /// The next message; before waiting for the network with nothing buffered, and after at
    /// least one message was returned since the last call, runs `onIdle` — the moment for a
    /// consumer to flush what it batched (a commit followed only by keepalives, then silence).
    public func next(onIdle: (() async throws -> Void)?) async throws -> WALMessage? {
        while !finished && !reachedEnd && !stopper.isRequested {
            if batch.isEmpty {
                if let onIdle, deliveredSinceIdle, !connection.hasBufferedMessages {
                    deliveredSinceIdle = false
                    try await onIdle()
                    continue
                }
                // A keepalive past the end came while transactions were still unconfirmed; once
                // they are, it ends the stream now rather than at the next keepalive (which an
                // idle server sends only every wal_sender_timeout / 2).
                if let pending = endKeepalive, nothingInFlight {
                    feedback.confirmFlushed(pending)
                    reachedEnd = true
                    continue
                }
                guard let more = try await connection.nextBatch() else {
                    finished = true
                    throw PGConnectionError(.connectionClosed, "the replication connection to \(connection.endpoint) closed")
                }
                batch = more
                continue
            }
            let message = batch.removeFirst()
            switch message {
            case .copyData(let payload):
                if let decoded = try decodeFrame(payload) { return decoded }
            case .copyDone:
                // The server ended the stream (it is shutting down): finish the protocol if it
                // still listens, and say so — this is not the end the consumer asked for.
                finished = true
                try? await connection.send(.copyDone)
                try? await drainUntilReady()
                throw Self.serverEnded()
            case .commandComplete:
                // A walsender that is shut down while caught up ends the COPY with CommandComplete
                // alone, then exits.
                finished = true
                throw Self.serverEnded()
            case .errorResponse(let fields):
                finished = true
                throw connection.serverError(fields)
            case .noticeResponse(let fields):
                connection.logNotice(fields)
            case .parameterStatus:
                continue
            default:
                finished = true
                throw connection.unexpected(message, during: "replication")
            }
        }
        return nil
    }

    private static func serverEnded() -> PGConnectionError {
        PGConnectionError(.connectionClosed, "the server ended the replication stream (it is shutting down or restarting)",
                          fix: "nothing to fix if the server restarts: reconnect and resume from the confirmed position")
    }

    private func decodeFrame(_ payload: ByteBuffer) throws -> WALMessage? {
        let frame: PostgresWire.ReplicationMessage
        do {
            frame = try PostgresWire.ReplicationMessage.decode(payload)
        } catch {
            finished = true
            throw PGConnectionError(.protocolViolation, "malformed replication frame: \(error)", underlying: error)
        }
        switch frame {
        case .xLogData(let data):
            var body = data.data
            let message: PGOutputMessage
            do {
                message = try decoder.decode(&body)
            } catch {
                finished = true
                throw PGConnectionError(.protocolViolation, "malformed pgoutput message at \(data.walStart): \(error)",
                                        fix: "report this with the bytes shown; the slot position was not advanced past it",
                                        underlying: error)
            }
            track(message)
            deliveredSinceIdle = true
            return WALMessage(walStart: data.walStart, walEnd: data.walEnd, sendTime: data.sendTime, message: message)
        case .primaryKeepalive(let keepalive):
            if nothingInFlight {
                feedback.confirmFlushed(keepalive.walEnd)
                if let endPosition, keepalive.walEnd >= endPosition { reachedEnd = true }
            } else if let endPosition, keepalive.walEnd >= endPosition {
                endKeepalive = keepalive.walEnd
            }
            return nil
        }
    }

    private func track(_ message: PGOutputMessage) {
        switch message {
        case .begin, .beginPrepare:
            inTransaction = true
        case .commit, .prepare:
            inTransaction = false
        case .streamStart(let start):
            openStreamedTransactions.insert(start.xid)
        case .streamCommit(let commit):
            openStreamedTransactions.remove(commit.xid)
        case .streamAbort(let abort):
            if abort.isTopLevel { openStreamedTransactions.remove(abort.xid) }
        case .streamPrepare(let prepare):
            openStreamedTransactions.remove(prepare.xid)
        default:
            break
        }
        if let end = message.unitEndLSN {
            lastDeliveredEnd = Swift.max(lastDeliveredEnd, end)
            if let endPosition, end >= endPosition { reachedEnd = true }
        }
    }

    /// Ends streaming cleanly: a final status update with the confirmed position, CopyDone,
    /// and the server's answer. The connection can then run other commands.
    public func stop() async throws {
        guard !finished else { return }
        finished = true
        let handler = connection.handler
        try await connection.channel.eventLoop.submit {
            guard let context = handler.value.context else { return }
            handler.value.stopReplicationFeedback(sendFinal: true, context: context)
        }.get()
        try await connection.send(.copyDone)
        try await drainUntilReady()
    }

    /// After CopyDone: skip the data still in flight until the server's CopyDone,
    /// CommandComplete and ReadyForQuery.
    private func drainUntilReady() async throws {
        finished = true
        while true {
            let message: BackendMessage
            if let buffered = batch.popFirst() { message = buffered } else { message = try await connection.next() }
            switch message {
            case .readyForQuery:
                return
            case .errorResponse(let fields):
                throw connection.serverError(fields)
            default:
                continue
            }
        }
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let stream: ReplicationStream
        public mutating func next() async throws -> WALMessage? { try await stream.next() }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(stream: self) }
}

/// Asks a replication stream to stop from anywhere (another task, a signal handler).
public final class ReplicationStopper: Sendable {
    private let requested = Atomic<Bool>(false)
    private let inbound: InboundBuffer<BackendMessage>

    init(inbound: InboundBuffer<BackendMessage>) { self.inbound = inbound }

    public func requestStop() {
        requested.store(true, ordering: .releasing)
        inbound.interrupt()
    }

    public var isRequested: Bool { requested.load(ordering: .acquiring) }
}
