import NIOCore

/// A failure to decode bytes received from the server: a malformed or unexpected backend message,
/// or a malformed replication frame inside `CopyData`.
///
/// Carries where it happened (the message type byte and the byte offset inside the message,
/// counted from the type byte) and up to ``maximumCapturedBytes`` of the message itself, so a
/// report is actionable without a packet capture. Decoding errors are fatal for a connection:
/// the byte stream can no longer be trusted.
public struct WireDecodingError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The kind of failure. Opaque so that new kinds can be added without breaking callers.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        enum Base: Sendable, Hashable {
            case invalidLength
            case messageTooLarge
            case unknownMessageType
            case truncated
            case trailingBytes
            case invalidValue
            case unknownReplicationMessage
        }

        let base: Base
        private init(_ base: Base) { self.base = base }

        /// The length field is smaller than its own four bytes (or negative).
        public static let invalidLength = Self(.invalidLength)
        /// The length field exceeds the configured maximum for this message type.
        public static let messageTooLarge = Self(.messageTooLarge)
        /// The type byte names no backend message this decoder knows.
        public static let unknownMessageType = Self(.unknownMessageType)
        /// A field runs past the end of its message.
        public static let truncated = Self(.truncated)
        /// The message holds bytes after its last field.
        public static let trailingBytes = Self(.trailingBytes)
        /// A field holds a value outside its documented range.
        public static let invalidValue = Self(.invalidValue)
        /// A `CopyData` payload during replication starts with an unknown tag.
        public static let unknownReplicationMessage = Self(.unknownReplicationMessage)

        public var description: String {
            switch base {
            case .invalidLength: "invalidLength"
            case .messageTooLarge: "messageTooLarge"
            case .unknownMessageType: "unknownMessageType"
            case .truncated: "truncated"
            case .trailingBytes: "trailingBytes"
            case .invalidValue: "invalidValue"
            case .unknownReplicationMessage: "unknownReplicationMessage"
            }
        }
    }

    /// How many bytes of the offending message an error keeps.
    public static let maximumCapturedBytes = 64

    public var code: Code
    /// The message type byte (`R`, `D`, …) or, for replication frames, the frame tag (`w`, `k`).
    public var messageType: UInt8?
    /// Offset inside the message, counted from its type byte, where decoding failed.
    public var offset: Int
    /// The first ``maximumCapturedBytes`` bytes of the message, starting with its type byte.
    public var bytes: [UInt8]
    /// What went wrong, for humans.
    public var reason: String

    public init(code: Code, messageType: UInt8?, offset: Int, bytes: [UInt8], reason: String) {
        self.code = code
        self.messageType = messageType
        self.offset = offset
        self.bytes = Array(bytes.prefix(Self.maximumCapturedBytes))
        self.reason = reason
    }

    public var description: String {
        var text = "wire decoding error (\(code)): \(reason)"
        if let messageType {
            text += " in message \(Self.describe(type: messageType))"
        }
        text += " at offset \(offset)"
        if !bytes.isEmpty {
            text += "; first bytes: " + bytes.map { byte in
                let hex = String(byte, radix: 16)
                return byte < 16 ? "0" + hex : hex
            }.joined(separator: " ")
        }
        return text
    }

    static func describe(type: UInt8) -> String {
        if type >= 0x21 && type < 0x7F {
            return "'\(Character(Unicode.Scalar(type)))'"
        }
        return "0x" + String(type, radix: 16)
    }
}

/// Reads the fields of one message body, producing located ``WireDecodingError``s.
///
/// `frame` is the whole message (type byte first) and is only read when an error is built.
struct WireReader {
    var body: ByteBuffer
    let frame: ByteBuffer
    let messageType: UInt8
    /// Bytes in `frame` before the body (5 for a backend message, 1 for a replication frame).
    let headerLength: Int
    let bodyStart: Int

    init(body: ByteBuffer, frame: ByteBuffer, messageType: UInt8, headerLength: Int) {
        self.body = body
        self.frame = frame
        self.messageType = messageType
        self.headerLength = headerLength
        self.bodyStart = body.readerIndex
    }

    var offset: Int { headerLength + (body.readerIndex - bodyStart) }
    var remaining: Int { body.readableBytes }

    func error(_ code: WireDecodingError.Code, _ reason: String, at offset: Int? = nil) -> WireDecodingError {
        WireDecodingError(
            code: code,
            messageType: messageType,
            offset: offset ?? self.offset,
            bytes: frame.getBytes(at: frame.readerIndex, length: min(frame.readableBytes, WireDecodingError.maximumCapturedBytes)) ?? [],
            reason: reason
        )
    }

    private func truncated(_ field: String, needs: Int) -> WireDecodingError {
        error(.truncated, "\(field) needs \(needs) bytes but only \(remaining) remain")
    }

    mutating func readUInt8(_ field: String) throws(WireDecodingError) -> UInt8 {
        guard let value = body.readInteger(as: UInt8.self) else { throw truncated(field, needs: 1) }
        return value
    }

    mutating func readInt16(_ field: String) throws(WireDecodingError) -> Int16 {
        guard let value = body.readInteger(endianness: .big, as: Int16.self) else { throw truncated(field, needs: 2) }
        return value
    }

    mutating func readInt32(_ field: String) throws(WireDecodingError) -> Int32 {
        guard let value = body.readInteger(endianness: .big, as: Int32.self) else { throw truncated(field, needs: 4) }
        return value
    }

    mutating func readUInt32(_ field: String) throws(WireDecodingError) -> UInt32 {
        guard let value = body.readInteger(endianness: .big, as: UInt32.self) else { throw truncated(field, needs: 4) }
        return value
    }

    mutating func readInt64(_ field: String) throws(WireDecodingError) -> Int64 {
        guard let value = body.readInteger(endianness: .big, as: Int64.self) else { throw truncated(field, needs: 8) }
        return value
    }

    mutating func readUInt64(_ field: String) throws(WireDecodingError) -> UInt64 {
        guard let value = body.readInteger(endianness: .big, as: UInt64.self) else { throw truncated(field, needs: 8) }
        return value
    }

    /// A NUL-terminated string. Invalid UTF-8 is repaired (U+FFFD), never rejected: the server
    /// sends text in `client_encoding`, which Ferry sets to UTF8.
    mutating func readCString(_ field: String) throws(WireDecodingError) -> String {
        let view = body.readableBytesView
        guard let nul = view.firstIndex(of: 0) else {
            throw error(.truncated, "\(field) is not NUL-terminated")
        }
        let length = nul - view.startIndex
        let string = body.readString(length: length) ?? ""
        body.moveReaderIndex(forwardBy: 1)
        return string
    }

    /// A slice (no copy) of `count` bytes.
    mutating func readSlice(_ field: String, count: Int) throws(WireDecodingError) -> ByteBuffer {
        guard count >= 0 else { throw error(.invalidValue, "\(field) has negative length \(count)") }
        guard let slice = body.readSlice(length: count) else { throw truncated(field, needs: count) }
        return slice
    }

    mutating func readBytes(_ field: String, count: Int) throws(WireDecodingError) -> [UInt8] {
        guard count >= 0 else { throw error(.invalidValue, "\(field) has negative length \(count)") }
        guard let bytes = body.readBytes(length: count) else { throw truncated(field, needs: count) }
        return bytes
    }

    mutating func readRemainingSlice() -> ByteBuffer {
        body.readSlice(length: body.readableBytes)!
    }

    mutating func readRemainingBytes() -> [UInt8] {
        body.readBytes(length: body.readableBytes)!
    }

    func expectEnd() throws(WireDecodingError) {
        if body.readableBytes > 0 {
            throw error(.trailingBytes, "\(body.readableBytes) unexpected bytes after the last field")
        }
    }
}
