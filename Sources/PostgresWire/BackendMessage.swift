import NIOCore

/// A message sent by the server (protocol 3.0 "Message Formats", marked B).
///
/// Byte-valued payloads (`copyData`, `dataRow` columns) are `ByteBuffer` slices sharing storage
/// with the receive buffer: no copy is made.
///
/// The single byte `S` or `N` that answers an `SSLRequest` is *not* a message and is not handled
/// here: the caller reads that one byte itself before feeding anything to ``BackendMessageDecoder``
/// (and, after `S`, hands the connection to TLS first). Feeding it to the decoder would misread
/// it as the type byte of a `ParameterStatus`/`NoticeResponse`.
public enum BackendMessage: Sendable, Hashable {
    case authentication(Authentication)
    case backendKeyData(BackendKeyData)
    case bindComplete
    case closeComplete
    case commandComplete(tag: String)
    case copyData(ByteBuffer)
    case copyDone
    case copyInResponse(CopyResponse)
    case copyOutResponse(CopyResponse)
    case copyBothResponse(CopyResponse)
    case dataRow(DataRow)
    case emptyQueryResponse
    case errorResponse([ServerMessageField: String])
    case functionCallResponse(ByteBuffer?)
    case negotiateProtocolVersion(NegotiateProtocolVersion)
    case noData
    case noticeResponse([ServerMessageField: String])
    case notificationResponse(NotificationResponse)
    case parameterDescription(typeOIDs: [UInt32])
    case parameterStatus(name: String, value: String)
    case parseComplete
    case portalSuspended
    case readyForQuery(TransactionStatus)
    case rowDescription([RowDescription.Field])

    /// The type byte that starts each backend message.
    public struct ID: RawRepresentable, Sendable, Hashable {
        public var rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        init(_ character: Unicode.Scalar) { self.rawValue = UInt8(character.value) }

        public static let authentication = ID("R")
        public static let backendKeyData = ID("K")
        public static let bindComplete = ID("2")
        public static let closeComplete = ID("3")
        public static let commandComplete = ID("C")
        public static let copyData = ID("d")
        public static let copyDone = ID("c")
        public static let copyInResponse = ID("G")
        public static let copyOutResponse = ID("H")
        public static let copyBothResponse = ID("W")
        public static let dataRow = ID("D")
        public static let emptyQueryResponse = ID("I")
        public static let errorResponse = ID("E")
        public static let functionCallResponse = ID("V")
        public static let negotiateProtocolVersion = ID("v")
        public static let noData = ID("n")
        public static let noticeResponse = ID("N")
        public static let notificationResponse = ID("A")
        public static let parameterDescription = ID("t")
        public static let parameterStatus = ID("S")
        public static let parseComplete = ID("1")
        public static let portalSuspended = ID("s")
        public static let readyForQuery = ID("Z")
        public static let rowDescription = ID("T")

        /// Whether this byte names a message the decoder knows.
        public var isKnown: Bool {
            switch rawValue {
            case UInt8(ascii: "R"), UInt8(ascii: "K"), UInt8(ascii: "2"), UInt8(ascii: "3"),
                 UInt8(ascii: "C"), UInt8(ascii: "d"), UInt8(ascii: "c"), UInt8(ascii: "G"),
                 UInt8(ascii: "H"), UInt8(ascii: "W"), UInt8(ascii: "D"), UInt8(ascii: "I"),
                 UInt8(ascii: "E"), UInt8(ascii: "V"), UInt8(ascii: "v"), UInt8(ascii: "n"),
                 UInt8(ascii: "N"), UInt8(ascii: "A"), UInt8(ascii: "t"), UInt8(ascii: "S"),
                 UInt8(ascii: "1"), UInt8(ascii: "s"), UInt8(ascii: "Z"), UInt8(ascii: "T"):
                true
            default:
                false
            }
        }

        /// Message types that may legitimately be long (libpq's `VALID_LONG_MESSAGE_TYPE`):
        /// rows, copy data, errors/notices, notifications, function results. Every other message
        /// is small, so a huge length on one of them means a corrupt stream.
        public var mayBeLong: Bool {
            switch rawValue {
            case UInt8(ascii: "T"), UInt8(ascii: "D"), UInt8(ascii: "d"), UInt8(ascii: "V"),
                 UInt8(ascii: "E"), UInt8(ascii: "N"), UInt8(ascii: "A"):
                true
            default:
                false
            }
        }
    }
}

/// `Authentication*` messages (type `R`), told apart by their Int32 code.
public enum Authentication: Sendable, Hashable {
    /// Code 0.
    case ok
    /// Code 3: send the password in clear text (only sensible over TLS).
    case cleartextPassword
    /// Code 5: send `"md5" + md5hex(md5hex(password + user) + salt)`; see ``MD5Password``.
    case md5Password(salt: [UInt8])
    /// Code 10: the SASL mechanisms the server accepts, in its order of preference.
    case sasl(mechanisms: [String])
    /// Code 11: a SASL challenge (for SCRAM, the server-first-message).
    case saslContinue(data: [UInt8])
    /// Code 12: the SASL outcome (for SCRAM, the server-final-message).
    case saslFinal(data: [UInt8])
    /// Kerberos V5 (2), GSSAPI (7), GSSAPI continue (8), SSPI (9), or any future code: Ferry
    /// does not speak these.
    case unsupported(code: Int32)
}

/// `BackendKeyData` (type `K`): what a `CancelRequest` must quote.
public struct BackendKeyData: Sendable, Hashable {
    public var processID: Int32
    /// 4 bytes under protocol 3.0; 4 to 256 bytes under protocol 3.2.
    public var secretKey: [UInt8]

    public init(processID: Int32, secretKey: [UInt8]) {
        self.processID = processID
        self.secretKey = secretKey
    }
}

/// Text (0) or binary (1), for copy and row formats.
public enum FormatCode: Int16, Sendable, Hashable {
    case text = 0
    case binary = 1
}

/// `CopyInResponse` (`G`), `CopyOutResponse` (`H`), `CopyBothResponse` (`W`).
public struct CopyResponse: Sendable, Hashable {
    public var format: FormatCode
    public var columnFormats: [FormatCode]

    public init(format: FormatCode, columnFormats: [FormatCode]) {
        self.format = format
        self.columnFormats = columnFormats
    }
}

/// `DataRow` (`D`): one value per column, `nil` for SQL NULL. Values are slices, not copies.
public struct DataRow: Sendable, Hashable {
    public var columns: [ByteBuffer?]

    public init(columns: [ByteBuffer?]) { self.columns = columns }
}

/// `RowDescription` (`T`).
public enum RowDescription {
    public struct Field: Sendable, Hashable {
        public var name: String
        /// OID of the source table, or 0.
        public var tableOID: UInt32
        /// Attribute number of the source column, or 0.
        public var columnAttributeNumber: Int16
        public var typeOID: UInt32
        /// `pg_type.typlen`; negative for variable-width types.
        public var typeSize: Int16
        /// `pg_attribute.atttypmod`; type-specific.
        public var typeModifier: Int32
        public var format: FormatCode

        public init(name: String, tableOID: UInt32, columnAttributeNumber: Int16, typeOID: UInt32,
                    typeSize: Int16, typeModifier: Int32, format: FormatCode) {
            self.name = name
            self.tableOID = tableOID
            self.columnAttributeNumber = columnAttributeNumber
            self.typeOID = typeOID
            self.typeSize = typeSize
            self.typeModifier = typeModifier
            self.format = format
        }
    }
}

/// `ReadyForQuery` (`Z`) transaction status.
public enum TransactionStatus: UInt8, Sendable, Hashable {
    /// `I`: not in a transaction block.
    case idle = 0x49
    /// `T`: in a transaction block.
    case inTransaction = 0x54
    /// `E`: in a failed transaction block (queries are rejected until it ends).
    case failedTransaction = 0x45
}

/// `NegotiateProtocolVersion` (`v`): the server speaks an older minor version than requested,
/// or did not recognise some `_pq_.` protocol options.
public struct NegotiateProtocolVersion: Sendable, Hashable {
    /// The version the connection will use (major in the high 16 bits, minor in the low).
    public var protocolVersion: ProtocolVersion
    public var unrecognizedOptions: [String]

    public init(protocolVersion: ProtocolVersion, unrecognizedOptions: [String]) {
        self.protocolVersion = protocolVersion
        self.unrecognizedOptions = unrecognizedOptions
    }
}

/// `NotificationResponse` (`A`), from `LISTEN`/`NOTIFY`.
public struct NotificationResponse: Sendable, Hashable {
    public var processID: Int32
    public var channel: String
    public var payload: String

    public init(processID: Int32, channel: String, payload: String) {
        self.processID = processID
        self.channel = channel
        self.payload = payload
    }
}

/// A frontend/backend protocol version: `major << 16 | minor` on the wire.
public struct ProtocolVersion: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var major: UInt16
    public var minor: UInt16

    public init(major: UInt16, minor: UInt16) {
        self.major = major
        self.minor = minor
    }

    public init(rawValue: Int32) {
        let bits = UInt32(bitPattern: rawValue)
        self.major = UInt16(truncatingIfNeeded: bits >> 16)
        self.minor = UInt16(truncatingIfNeeded: bits)
    }

    public var rawValue: Int32 { Int32(bitPattern: UInt32(major) << 16 | UInt32(minor)) }

    /// 3.0 (196608): every server since 7.4.
    public static let v3_0 = ProtocolVersion(major: 3, minor: 0)
    /// 3.2 (196610): PostgreSQL 18+, longer cancel keys.
    public static let v3_2 = ProtocolVersion(major: 3, minor: 2)

    public static func < (lhs: Self, rhs: Self) -> Bool { (lhs.major, lhs.minor) < (rhs.major, rhs.minor) }

    public var description: String { "\(major).\(minor)" }
}

extension BackendMessage {
    /// Decodes the body of a message whose header was already validated.
    static func decode(id: ID, reader: inout WireReader) throws(WireDecodingError) -> BackendMessage {
        let message: BackendMessage
        switch id {
        case .copyData:
            return .copyData(reader.readRemainingSlice())
        case .dataRow:
            message = .dataRow(try DataRow.decode(&reader))
        case .authentication:
            message = .authentication(try Authentication.decode(&reader))
        case .backendKeyData:
            let processID = try reader.readInt32("process ID")
            let key = reader.readRemainingBytes()
            guard (4...256).contains(key.count) else {
                throw reader.error(.invalidValue, "secret key is \(key.count) bytes; expected 4 to 256", at: 9)
            }
            message = .backendKeyData(BackendKeyData(processID: processID, secretKey: key))
        case .bindComplete:
            message = .bindComplete
        case .closeComplete:
            message = .closeComplete
        case .commandComplete:
            message = .commandComplete(tag: try reader.readCString("command tag"))
        case .copyDone:
            message = .copyDone
        case .copyInResponse:
            message = .copyInResponse(try CopyResponse.decode(&reader))
        case .copyOutResponse:
            message = .copyOutResponse(try CopyResponse.decode(&reader))
        case .copyBothResponse:
            message = .copyBothResponse(try CopyResponse.decode(&reader))
        case .emptyQueryResponse:
            message = .emptyQueryResponse
        case .errorResponse:
            message = .errorResponse(try ServerMessageField.decodeFields(&reader))
        case .noticeResponse:
            message = .noticeResponse(try ServerMessageField.decodeFields(&reader))
        case .functionCallResponse:
            let length = try reader.readInt32("result length")
            if length == -1 {
                message = .functionCallResponse(nil)
            } else {
                message = .functionCallResponse(try reader.readSlice("result value", count: Int(length)))
            }
        case .negotiateProtocolVersion:
            let version = ProtocolVersion(rawValue: try reader.readInt32("protocol version"))
            let count = try reader.readInt32("option count")
            guard count >= 0 else {
                throw reader.error(.invalidValue, "negative option count \(count)", at: reader.offset - 4)
            }
            var options: [String] = []
            // Each option needs at least its NUL: never reserve more than the bytes could hold.
            options.reserveCapacity(min(Int(count), reader.remaining))
            for _ in 0..<count {
                options.append(try reader.readCString("option name"))
            }
            message = .negotiateProtocolVersion(NegotiateProtocolVersion(protocolVersion: version, unrecognizedOptions: options))
        case .noData:
            message = .noData
        case .notificationResponse:
            let processID = try reader.readInt32("process ID")
            let channel = try reader.readCString("channel")
            let payload = try reader.readCString("payload")
            message = .notificationResponse(NotificationResponse(processID: processID, channel: channel, payload: payload))
        case .parameterDescription:
            let count = try reader.readInt16("parameter count")
            guard count >= 0 else {
                throw reader.error(.invalidValue, "negative parameter count \(count)", at: reader.offset - 2)
            }
            var oids: [UInt32] = []
            oids.reserveCapacity(min(Int(count), reader.remaining / 4))
            for _ in 0..<count {
                oids.append(try reader.readUInt32("parameter type OID"))
            }
            message = .parameterDescription(typeOIDs: oids)
        case .parameterStatus:
            let name = try reader.readCString("parameter name")
            let value = try reader.readCString("parameter value")
            message = .parameterStatus(name: name, value: value)
        case .parseComplete:
            message = .parseComplete
        case .portalSuspended:
            message = .portalSuspended
        case .readyForQuery:
            let byte = try reader.readUInt8("transaction status")
            guard let status = TransactionStatus(rawValue: byte) else {
                throw reader.error(.invalidValue, "transaction status \(WireDecodingError.describe(type: byte)) is not I, T or E", at: reader.offset - 1)
            }
            message = .readyForQuery(status)
        case .rowDescription:
            message = .rowDescription(try RowDescription.decode(&reader))
        default:
            throw reader.error(.unknownMessageType, "unknown backend message type", at: 0)
        }
        try reader.expectEnd()
        return message
    }
}

extension Authentication {
    static func decode(_ reader: inout WireReader) throws(WireDecodingError) -> Authentication {
        let code = try reader.readInt32("authentication code")
        switch code {
        case 0:
            return .ok
        case 3:
            return .cleartextPassword
        case 5:
            return .md5Password(salt: try reader.readBytes("MD5 salt", count: 4))
        case 10:
            var mechanisms: [String] = []
            while true {
                let name = try reader.readCString("SASL mechanism")
                if name.isEmpty { break }
                mechanisms.append(name)
            }
            return .sasl(mechanisms: mechanisms)
        case 11:
            return .saslContinue(data: reader.readRemainingBytes())
        case 12:
            return .saslFinal(data: reader.readRemainingBytes())
        default:
            // GSSAPI continue (8) carries data; other unsupported kinds carry none we need.
            _ = reader.readRemainingSlice()
            return .unsupported(code: code)
        }
    }
}

extension FormatCode {
    static func decode(_ reader: inout WireReader, _ field: String) throws(WireDecodingError) -> FormatCode {
        let raw = try reader.readInt16(field)
        guard let format = FormatCode(rawValue: raw) else {
            throw reader.error(.invalidValue, "\(field) \(raw) is neither 0 (text) nor 1 (binary)", at: reader.offset - 2)
        }
        return format
    }
}

extension CopyResponse {
    static func decode(_ reader: inout WireReader) throws(WireDecodingError) -> CopyResponse {
        let overall = try reader.readUInt8("copy format")
        guard let format = FormatCode(rawValue: Int16(overall)) else {
            throw reader.error(.invalidValue, "copy format \(overall) is neither 0 (text) nor 1 (binary)", at: reader.offset - 1)
        }
        let count = try reader.readInt16("column count")
        guard count >= 0 else {
            throw reader.error(.invalidValue, "negative column count \(count)", at: reader.offset - 2)
        }
        var formats: [FormatCode] = []
        formats.reserveCapacity(min(Int(count), reader.remaining / 2))
        for _ in 0..<count {
            formats.append(try FormatCode.decode(&reader, "column format"))
        }
        return CopyResponse(format: format, columnFormats: formats)
    }
}

extension DataRow {
    static func decode(_ reader: inout WireReader) throws(WireDecodingError) -> DataRow {
        let count = try reader.readInt16("column count")
        guard count >= 0 else {
            throw reader.error(.invalidValue, "negative column count \(count)", at: reader.offset - 2)
        }
        var columns: [ByteBuffer?] = []
        columns.reserveCapacity(min(Int(count), reader.remaining / 4))
        for _ in 0..<count {
            let length = try reader.readInt32("column length")
            if length == -1 {
                columns.append(nil)
            } else if length < -1 {
                throw reader.error(.invalidValue, "column length \(length) is below -1", at: reader.offset - 4)
            } else {
                columns.append(try reader.readSlice("column value", count: Int(length)))
            }
        }
        return DataRow(columns: columns)
    }
}

extension RowDescription {
    static func decode(_ reader: inout WireReader) throws(WireDecodingError) -> [Field] {
        let count = try reader.readInt16("field count")
        guard count >= 0 else {
            throw reader.error(.invalidValue, "negative field count \(count)", at: reader.offset - 2)
        }
        var fields: [Field] = []
        // A field takes at least 19 bytes (an empty name's NUL + 18 bytes of attributes).
        fields.reserveCapacity(min(Int(count), reader.remaining / 19))
        for _ in 0..<count {
            let name = try reader.readCString("field name")
            let tableOID = try reader.readUInt32("table OID")
            let column = try reader.readInt16("column attribute number")
            let typeOID = try reader.readUInt32("type OID")
            let typeSize = try reader.readInt16("type size")
            let typeModifier = try reader.readInt32("type modifier")
            let format = try FormatCode.decode(&reader, "format code")
            fields.append(Field(name: name, tableOID: tableOID, columnAttributeNumber: column, typeOID: typeOID,
                                typeSize: typeSize, typeModifier: typeModifier, format: format))
        }
        return fields
    }
}
