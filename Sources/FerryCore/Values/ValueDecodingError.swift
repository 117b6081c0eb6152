/// The wire format of one value: the type's text output (`typoutput`, pgoutput's `t`, COPY
/// text) or its binary send format (`typsend`, pgoutput's `b` under `binary 'true'`, COPY
/// `FORMAT binary`).
public enum ValueFormat: Sendable, Hashable, CustomStringConvertible {
    case text
    case binary

    public var description: String {
        switch self {
        case .text: "text"
        case .binary: "binary"
        }
    }
}

/// Why a column value could not be decoded.
///
/// `description` names the kind, the type OID and the format only — the bytes are row data
/// and must not end up in logs by accident. `debugDescription` (`String(reflecting:)`) adds
/// ``detail`` and a hex dump of (at most ``maximumCopiedBytes`` of) the offending bytes.
public struct ValueDecodingError: Error, Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible {
    /// The kind of failure. Compare against the static members; new kinds may be added.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        enum Base: Hashable, Sendable {
            case truncated
            case trailingBytes
            case invalidLength
            case invalidSyntax
            case outOfRange
            case invalidEncoding
            case tooDeep
        }

        let base: Base

        /// The binary value ended in the middle of a field.
        public static let truncated = Code(base: .truncated)
        /// Bytes were left after a complete binary value.
        public static let trailingBytes = Code(base: .trailingBytes)
        /// A binary value has the wrong size for its type, or a length/count field inside it is
        /// negative or larger than the bytes left.
        public static let invalidLength = Code(base: .invalidLength)
        /// The text is not what the type's output function produces (under the session settings
        /// Ferry requires: `DateStyle=ISO`, `IntervalStyle=postgres` or `iso_8601`…).
        public static let invalidSyntax = Code(base: .invalidSyntax)
        /// A number or date outside the type's range, or a field with a value the type never has.
        public static let outOfRange = Code(base: .outOfRange)
        /// Text that is not valid UTF-8 (Ferry's connections use `client_encoding=UTF8`).
        public static let invalidEncoding = Code(base: .invalidEncoding)
        /// Arrays or composites nested deeper than ``ValueDecoder/maximumNesting``.
        public static let tooDeep = Code(base: .tooDeep)

        public var description: String {
            switch base {
            case .truncated: "value truncated"
            case .trailingBytes: "trailing bytes after value"
            case .invalidLength: "invalid length"
            case .invalidSyntax: "invalid syntax"
            case .outOfRange: "value out of range"
            case .invalidEncoding: "invalid UTF-8"
            case .tooDeep: "nested too deep"
            }
        }
    }

    /// At most this many bytes of the value are copied into ``bytes``.
    public static let maximumCopiedBytes = 64

    public var code: Code
    /// The type being decoded (for an array element, the element type).
    public var typeOID: UInt32
    public var format: ValueFormat
    /// What was expected, for debugging; may quote the value, so it is only in `debugDescription`.
    public var detail: String
    /// The first bytes of the offending value.
    public var bytes: [UInt8]
    /// The full length of the offending value.
    public var byteCount: Int

    public init(_ code: Code, typeOID: UInt32, format: ValueFormat, detail: String = "", bytes: some Collection<UInt8>) {
        self.code = code
        self.typeOID = typeOID
        self.format = format
        self.detail = detail
        self.bytes = Array(bytes.prefix(Self.maximumCopiedBytes))
        self.byteCount = bytes.count
    }

    public var description: String {
        "cannot decode \(format) value of type OID \(typeOID): \(code)"
    }

    public var debugDescription: String {
        var text = description
        if !detail.isEmpty { text += " (\(detail))" }
        text += ", \(byteCount) bytes"
        if !bytes.isEmpty {
            text += ": "
            for byte in bytes {
                text.unicodeScalars.append(Unicode.Scalar(hexDigits[Int(byte >> 4)]))
                text.unicodeScalars.append(Unicode.Scalar(hexDigits[Int(byte & 0xF)]))
            }
            if byteCount > bytes.count { text += "…" }
        }
        return text
    }
}
