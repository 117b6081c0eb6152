import NIOCore

/// Why a `pgoutput` payload could not be decoded, and where.
///
/// `description` names the kind, the message tag and the byte offset only: payloads carry
/// row values, which must not end up in logs by accident. `debugDescription`
/// (`String(reflecting:)`) adds ``detail`` and a hex dump of ``bytes``.
public struct PGOutputDecodingError: Error, Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible {
    /// The kind of failure. Compare against the static members; new kinds may be added.
    public struct Kind: Hashable, Sendable, CustomStringConvertible {
        enum Code: Hashable, Sendable {
            case emptyPayload
            case unknownMessageTag
            case unsupportedByProtocolVersion
            case unexpectedStreamBoundary
            case truncated
            case trailingBytes
            case unterminatedString
            case invalidLength
            case invalidCount
            case invalidFlags
            case invalidValue
            case invalidTupleMarker
            case invalidColumnKind
        }

        let code: Code

        /// The payload has no bytes at all.
        public static let emptyPayload = Kind(code: .emptyPayload)
        /// The first byte is not a pgoutput message tag.
        public static let unknownMessageTag = Kind(code: .unknownMessageTag)
        /// A streaming (v2) or two-phase (v3) message arrived under a lower negotiated version.
        public static let unsupportedByProtocolVersion = Kind(code: .unsupportedByProtocolVersion)
        /// Stream Start inside a stream block, or Stream Stop outside one.
        public static let unexpectedStreamBoundary = Kind(code: .unexpectedStreamBoundary)
        /// The payload ended in the middle of a field.
        public static let truncated = Kind(code: .truncated)
        /// Bytes were left after a complete message.
        public static let trailingBytes = Kind(code: .trailingBytes)
        /// A string field has no terminating zero byte.
        public static let unterminatedString = Kind(code: .unterminatedString)
        /// A length field is negative or larger than the bytes left.
        public static let invalidLength = Kind(code: .invalidLength)
        /// A count field is negative or larger than the bytes left can hold.
        public static let invalidCount = Kind(code: .invalidCount)
        /// A flags byte has bits PostgreSQL never sets.
        public static let invalidFlags = Kind(code: .invalidFlags)
        /// An enumerated byte (replica identity, first-segment) has an unknown value.
        public static let invalidValue = Kind(code: .invalidValue)
        /// Expected a tuple marker `N`, `K` or `O` and found another byte.
        public static let invalidTupleMarker = Kind(code: .invalidTupleMarker)
        /// A tuple column kind is not `n`, `u`, `t` or `b`.
        public static let invalidColumnKind = Kind(code: .invalidColumnKind)

        public var description: String {
            switch code {
            case .emptyPayload: "empty payload"
            case .unknownMessageTag: "unknown message tag"
            case .unsupportedByProtocolVersion: "message not supported by the negotiated protocol version"
            case .unexpectedStreamBoundary: "unexpected stream boundary"
            case .truncated: "payload truncated"
            case .trailingBytes: "trailing bytes after message"
            case .unterminatedString: "unterminated string"
            case .invalidLength: "invalid length"
            case .invalidCount: "invalid count"
            case .invalidFlags: "invalid flags"
            case .invalidValue: "invalid value"
            case .invalidTupleMarker: "invalid tuple marker"
            case .invalidColumnKind: "invalid column kind"
            }
        }
    }

    /// At most this many payload bytes are copied into ``bytes``.
    public static let maximumCopiedBytes = 64

    public var kind: Kind
    /// The message tag (first payload byte), nil for an empty payload.
    public var messageTag: UInt8?
    /// Offset from the start of the payload of the field that failed.
    public var offset: Int
    /// Total length of the payload.
    public var payloadLength: Int
    /// The first bytes of the payload (at most ``maximumCopiedBytes``), tag included.
    public var bytes: [UInt8]
    /// What was being read and what was found, e.g. `"tuple column 3 length -5"`.
    public var detail: String

    public init(kind: Kind, messageTag: UInt8?, offset: Int, payloadLength: Int, bytes: [UInt8], detail: String) {
        self.kind = kind
        self.messageTag = messageTag
        self.offset = offset
        self.payloadLength = payloadLength
        self.bytes = bytes
        self.detail = detail
    }

    public var description: String {
        "pgoutput decoding failed: \(kind) in message \(Self.tagDescription(messageTag)) at byte \(offset) of \(payloadLength)"
    }

    public var debugDescription: String {
        let hex = bytes.map { byte in
            let digits = String(byte, radix: 16)
            return byte < 16 ? "0" + digits : digits
        }.joined()
        let ellipsis = payloadLength > bytes.count ? "…" : ""
        return "\(description): \(detail); payload \(hex)\(ellipsis)"
    }

    static func tagDescription(_ tag: UInt8?) -> String {
        guard let tag else { return "<none>" }
        if tag >= 0x20 && tag < 0x7F {
            return "'\(Character(Unicode.Scalar(tag)))'"
        }
        return "0x" + String(tag, radix: 16)
    }
}
