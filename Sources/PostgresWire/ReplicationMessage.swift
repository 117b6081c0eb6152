import Foundation
import NIOCore

/// A server→client message inside `CopyData` once `START_REPLICATION` has switched the
/// connection to copy-both mode (protocol "Streaming Replication Protocol").
public enum ReplicationMessage: Sendable, Hashable {
    /// `w`: a chunk of WAL; for logical replication, one output-plugin message.
    case xLogData(XLogData)
    /// `k`: a keepalive, possibly asking for an immediate ``StandbyStatusUpdate``.
    case primaryKeepalive(PrimaryKeepalive)

    /// Decodes one `CopyData` payload. `XLogData.data` is a slice of `payload` (no copy).
    ///
    /// Errors carry the tag as `messageType` and offsets counted from the tag byte.
    public static func decode(_ payload: ByteBuffer) throws(WireDecodingError) -> ReplicationMessage {
        guard let tag = payload.getInteger(at: payload.readerIndex, as: UInt8.self) else {
            throw WireDecodingError(code: .truncated, messageType: nil, offset: 0, bytes: [],
                                    reason: "empty CopyData payload where a replication message was expected")
        }
        // Fast path for well-formed frames (fixed offsets, no reader); anything else takes the
        // checked path below, which locates the error.
        let start = payload.readerIndex
        let count = payload.readableBytes
        if tag == UInt8(ascii: "w"), count >= 25,
           let walStart = payload.getInteger(at: start + 1, endianness: .big, as: UInt64.self),
           let walEnd = payload.getInteger(at: start + 9, endianness: .big, as: UInt64.self),
           let time = payload.getInteger(at: start + 17, endianness: .big, as: Int64.self),
           let data = payload.getSlice(at: start + 25, length: count - 25) {
            return .xLogData(XLogData(walStart: LSN(walStart), walEnd: LSN(walEnd),
                                      sendTime: PostgresTimestamp(rawValue: time), data: data))
        }
        if tag == UInt8(ascii: "k"), count == 18,
           let walEnd = payload.getInteger(at: start + 1, endianness: .big, as: UInt64.self),
           let time = payload.getInteger(at: start + 9, endianness: .big, as: Int64.self),
           let reply = payload.getInteger(at: start + 17, as: UInt8.self), reply <= 1 {
            return .primaryKeepalive(PrimaryKeepalive(walEnd: LSN(walEnd), sendTime: PostgresTimestamp(rawValue: time),
                                                      replyRequested: reply == 1))
        }
        var body = payload
        body.moveReaderIndex(forwardBy: 1)
        var reader = WireReader(body: body, frame: payload, messageType: tag, headerLength: 1)
        switch tag {
        case UInt8(ascii: "w"):
            let start = try reader.readUInt64("WAL start")
            let end = try reader.readUInt64("WAL end")
            let time = try reader.readInt64("send time")
            return .xLogData(XLogData(walStart: LSN(start), walEnd: LSN(end),
                                      sendTime: PostgresTimestamp(rawValue: time),
                                      data: reader.readRemainingSlice()))
        case UInt8(ascii: "k"):
            let end = try reader.readUInt64("WAL end")
            let time = try reader.readInt64("send time")
            let reply = try reader.readUInt8("reply requested")
            guard reply <= 1 else {
                throw reader.error(.invalidValue, "reply-requested flag is \(reply); expected 0 or 1", at: reader.offset - 1)
            }
            try reader.expectEnd()
            return .primaryKeepalive(PrimaryKeepalive(walEnd: LSN(end), sendTime: PostgresTimestamp(rawValue: time),
                                                      replyRequested: reply == 1))
        default:
            throw reader.error(.unknownReplicationMessage, "unknown replication message tag (expected 'w' or 'k')", at: 0)
        }
    }
}

/// `XLogData` (`w`).
public struct XLogData: Sendable, Hashable {
    /// Where `data` starts in the WAL.
    public var walStart: LSN
    /// The current end of WAL on the server.
    public var walEnd: LSN
    /// The server's clock when it sent the message.
    public var sendTime: PostgresTimestamp
    /// The WAL bytes (for logical replication: one pgoutput message). A slice, not a copy.
    public var data: ByteBuffer

    public init(walStart: LSN, walEnd: LSN, sendTime: PostgresTimestamp, data: ByteBuffer) {
        self.walStart = walStart
        self.walEnd = walEnd
        self.sendTime = sendTime
        self.data = data
    }
}

/// Primary keepalive message (`k`).
public struct PrimaryKeepalive: Sendable, Hashable {
    /// The current end of WAL on the server.
    public var walEnd: LSN
    public var sendTime: PostgresTimestamp
    /// The server asks for a status update at once (or it will time the client out).
    public var replyRequested: Bool

    public init(walEnd: LSN, sendTime: PostgresTimestamp, replyRequested: Bool) {
        self.walEnd = walEnd
        self.sendTime = sendTime
        self.replyRequested = replyRequested
    }
}

/// Standby status update (`r`), client→server inside `CopyData`.
///
/// `flushed` is the position that moves the slot's `confirmed_flush_lsn`: report there only
/// what every destination has made durable.
public struct StandbyStatusUpdate: Sendable, Hashable {
    /// Last WAL byte + 1 received and written.
    public var written: LSN
    /// Last WAL byte + 1 durably stored (what the slot may forget).
    public var flushed: LSN
    /// Last WAL byte + 1 applied.
    public var applied: LSN
    /// The client's clock when sending.
    public var clock: PostgresTimestamp
    /// Ask the server to reply at once (with a keepalive).
    public var replyRequested: Bool

    /// The payload is always 34 bytes: tag, four Int64s, one flag byte.
    public static let payloadLength = 34

    public init(written: LSN, flushed: LSN, applied: LSN, clock: PostgresTimestamp, replyRequested: Bool = false) {
        self.written = written
        self.flushed = flushed
        self.applied = applied
        self.clock = clock
        self.replyRequested = replyRequested
    }

    /// Appends the 34-byte payload (`r` …) without the `CopyData` framing.
    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(ascii: "r"))
        buffer.writeInteger(written.rawValue, endianness: .big)
        buffer.writeInteger(flushed.rawValue, endianness: .big)
        buffer.writeInteger(applied.rawValue, endianness: .big)
        buffer.writeInteger(clock.rawValue, endianness: .big)
        buffer.writeInteger(UInt8(replyRequested ? 1 : 0))
    }

    /// Appends the complete `CopyData` message (39 bytes) ready for the socket.
    public func encodeAsCopyData(into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(ascii: "d"))
        buffer.writeInteger(Int32(4 + Self.payloadLength), endianness: .big)
        encode(into: &buffer)
    }
}

/// A PostgreSQL timestamp on the wire: microseconds since 2000-01-01 00:00:00 UTC.
public struct PostgresTimestamp: RawRepresentable, Sendable, Hashable, Comparable, CustomStringConvertible {
    public var rawValue: Int64

    public init(rawValue: Int64) { self.rawValue = rawValue }

    /// Seconds from the Unix epoch to the PostgreSQL epoch (2000-01-01 UTC).
    public static let postgresEpochInUnixSeconds: Int64 = 946_684_800

    /// 2000-01-01 00:00:00 UTC.
    public static let postgresEpoch = PostgresTimestamp(rawValue: 0)

    /// From microseconds since the Unix epoch (saturating at the Int64 range).
    public init(microsecondsSince1970 value: Int64) {
        let (result, overflow) = value.subtractingReportingOverflow(Self.postgresEpochInUnixSeconds * 1_000_000)
        self.rawValue = overflow ? (value < 0 ? .min : .max) : result
    }

    /// Microseconds since the Unix epoch (saturating at the Int64 range).
    public var microsecondsSince1970: Int64 {
        let (result, overflow) = rawValue.addingReportingOverflow(Self.postgresEpochInUnixSeconds * 1_000_000)
        return overflow ? (rawValue < 0 ? .min : .max) : result
    }

    /// Rounded to the nearest microsecond; saturates for dates outside the Int64 range (and NaN
    /// gives the epoch), so it never traps.
    public init(_ date: Date) {
        let microseconds = ((date.timeIntervalSince1970 - Double(Self.postgresEpochInUnixSeconds)) * 1_000_000).rounded()
        if microseconds.isNaN {
            self.rawValue = 0
        } else if microseconds >= 9.2233720368547758e18 {
            self.rawValue = .max
        } else if microseconds <= -9.2233720368547758e18 {
            self.rawValue = .min
        } else {
            self.rawValue = Int64(microseconds)
        }
    }

    public var date: Date {
        Date(timeIntervalSince1970: Double(Self.postgresEpochInUnixSeconds) + Double(rawValue) / 1_000_000)
    }

    /// The current time.
    public static var now: PostgresTimestamp { PostgresTimestamp(Date()) }

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }

    public var description: String { "\(date) (\(rawValue) µs since 2000-01-01)" }
}
