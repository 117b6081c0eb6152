import NIOCore

/// Splits a byte stream from the server into ``BackendMessage``s, incrementally.
///
/// ```swift
/// var decoder = BackendMessageDecoder()
/// while let message = try decoder.next(from: &buffer) { … }
/// ```
///
/// - `next(from:)` returns `nil` when `buffer` holds only part of a message; nothing is consumed,
///   so the caller appends more bytes and calls again.
/// - The header is checked before anything waits or allocates: an unknown type byte, a length
///   below 4, or a length above the limit fails at once (a corrupt stream cannot make the caller
///   buffer a gigabyte).
/// - On error nothing is consumed either; the error is fatal for the connection.
/// - Decoding is total: any bytes give a message, `nil`, or a ``WireDecodingError`` — never a trap.
///
/// The one-byte answer (`S`/`N`) to an `SSLRequest` must be read by the caller before using this
/// decoder (see ``BackendMessage``).
public struct BackendMessageDecoder: Sendable {
    /// Largest value accepted in the length field (which counts itself) of messages that may be
    /// long: `DataRow`, `CopyData`, `RowDescription`, errors, notices, notifications,
    /// function results. The default is 1 GiB (PostgreSQL's own limit for one value) plus 64 KiB.
    public var maximumMessageLength: Int
    /// Largest value accepted in the length field of every other message (libpq uses 30000).
    public var maximumShortMessageLength: Int

    public static let defaultMaximumMessageLength = (1 << 30) + (1 << 16)
    public static let defaultMaximumShortMessageLength = 30_000

    public init(maximumMessageLength: Int = Self.defaultMaximumMessageLength,
                maximumShortMessageLength: Int = Self.defaultMaximumShortMessageLength) {
        self.maximumMessageLength = maximumMessageLength
        self.maximumShortMessageLength = min(maximumShortMessageLength, maximumMessageLength)
    }

    /// The next complete message in `buffer`, consuming exactly its bytes; `nil` if the buffer
    /// holds only part of one (nothing consumed).
    public mutating func next(from buffer: inout ByteBuffer) throws(WireDecodingError) -> BackendMessage? {
        let start = buffer.readerIndex
        guard buffer.readableBytes >= 5,
              let type = buffer.getInteger(at: start, as: UInt8.self),
              let length = buffer.getInteger(at: start + 1, endianness: .big, as: Int32.self)
        else {
            // Fewer than 5 bytes; still reject a garbage type byte early.
            if let type = buffer.getInteger(at: start, as: UInt8.self), !BackendMessage.ID(rawValue: type).isKnown {
                throw headerError(.unknownMessageType, "unknown backend message type", buffer: buffer, offset: 0)
            }
            return nil
        }
        let id = BackendMessage.ID(rawValue: type)
        guard id.isKnown else {
            throw headerError(.unknownMessageType, "unknown backend message type", buffer: buffer, offset: 0)
        }
        guard length >= 4 else {
            throw headerError(.invalidLength, "length \(length) is smaller than the 4 bytes of the length itself", buffer: buffer, offset: 1)
        }
        let limit = id.mayBeLong ? maximumMessageLength : maximumShortMessageLength
        guard Int(length) <= limit else {
            throw headerError(.messageTooLarge, "length \(length) exceeds the limit of \(limit) bytes for this message type", buffer: buffer, offset: 1)
        }
        let total = 1 + Int(length)
        guard buffer.readableBytes >= total else { return nil }

        // Hot path during replication: a CopyData body is handed out as a slice.
        if type == UInt8(ascii: "d") {
            let payload = buffer.getSlice(at: start + 5, length: total - 5)!
            buffer.moveReaderIndex(forwardBy: total)
            return .copyData(payload)
        }

        let body = buffer.getSlice(at: start + 5, length: total - 5)!
        let frame = buffer.getSlice(at: start, length: total)!
        var reader = WireReader(body: body, frame: frame, messageType: type, headerLength: 5)
        let message = try BackendMessage.decode(id: id, reader: &reader)
        buffer.moveReaderIndex(forwardBy: total)
        return message
    }

    private func headerError(_ code: WireDecodingError.Code, _ reason: String, buffer: ByteBuffer, offset: Int) -> WireDecodingError {
        WireDecodingError(
            code: code,
            messageType: buffer.getInteger(at: buffer.readerIndex, as: UInt8.self),
            offset: offset,
            bytes: buffer.getBytes(at: buffer.readerIndex, length: min(buffer.readableBytes, WireDecodingError.maximumCapturedBytes)) ?? [],
            reason: reason
        )
    }
}

/// Lets the connection layer drive the decoder with `NIOSingleStepByteToMessageProcessor`
/// (a pure NIOCore helper; no channel involved).
extension BackendMessageDecoder: NIOSingleStepByteToMessageDecoder {
    public typealias InboundOut = BackendMessage

    public mutating func decode(buffer: inout ByteBuffer) throws -> BackendMessage? {
        try next(from: &buffer)
    }

    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> BackendMessage? {
        try next(from: &buffer)
    }
}
