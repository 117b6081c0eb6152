import NIOCore

/// A message the client sends (protocol 3.0 "Message Formats", marked F).
///
/// `encode(into:)` validates what the protocol cannot carry (a NUL inside a string field, a
/// message longer than `Int32.max`) and throws instead of writing a corrupt message. The
/// replication hot path has non-throwing static encoders: ``encodeCopyData(_:into:)``,
/// ``encodeCopyDone(into:)`` and ``StandbyStatusUpdate/encodeAsCopyData(into:)``.
public enum FrontendMessage: Sendable, Hashable {
    /// `SSLRequest`: Int32(8) Int32(80877103). The server answers with one byte, `S` or `N`.
    case sslRequest
    /// `StartupMessage`: no type byte; Int32 length, Int32 protocol version, name/value pairs.
    case startup(StartupMessage)
    /// `PasswordMessage` (`p`): a cleartext password or an MD5 response (``MD5Password``).
    case password(String)
    /// `SASLInitialResponse` (`p`): mechanism name, Int32 length of the response (-1 if none), response.
    case saslInitialResponse(mechanism: String, initialResponse: [UInt8]?)
    /// `SASLResponse` (`p`): mechanism-specific data.
    case saslResponse([UInt8])
    /// `Query` (`Q`): the simple query protocol (the only one a walsender accepts).
    case query(String)
    /// `CopyData` (`d`).
    case copyData(ByteBuffer)
    /// `CopyDone` (`c`).
    case copyDone
    /// `CopyFail` (`f`) with an error message.
    case copyFail(message: String)
    /// `Parse` (`P`): a statement name (empty: the unnamed statement), the query, and the
    /// parameters' type OIDs (0 or missing: the server infers the type).
    case parse(statement: String, query: String, parameterTypes: [UInt32])
    /// `Bind` (`B`): a portal (empty: unnamed) of a parsed statement with its parameters, all in
    /// text format (nil: NULL); results in text format.
    case bind(portal: String, statement: String, parameters: [String?])
    /// `Execute` (`E`): runs a portal, returning at most `maxRows` rows (0: all).
    case execute(portal: String, maxRows: Int32)
    /// `Sync` (`S`).
    case sync
    /// `Flush` (`H`).
    case flush
    /// `Terminate` (`X`).
    case terminate
    /// `CancelRequest`, sent on a *new* connection: Int32 length, Int32(80877102), process ID, secret key.
    case cancelRequest(BackendKeyData)

    public static let sslRequestCode: Int32 = 80_877_103
    public static let cancelRequestCode: Int32 = 80_877_102

    /// Appends the message to `buffer`. On error nothing is appended.
    public func encode(into buffer: inout ByteBuffer) throws(WireEncodingError) {
        let start = buffer.writerIndex
        do {
            try encodeUnchecked(into: &buffer)
        } catch {
            buffer.moveWriterIndex(to: start)
            throw error
        }
    }

    private func encodeUnchecked(into buffer: inout ByteBuffer) throws(WireEncodingError) {
        switch self {
        case .sslRequest:
            buffer.writeInteger(Int32(8), endianness: .big)
            buffer.writeInteger(Self.sslRequestCode, endianness: .big)
        case .startup(let startup):
            let lengthIndex = buffer.writerIndex
            buffer.writeInteger(Int32(0), endianness: .big)
            buffer.writeInteger(startup.protocolVersion.rawValue, endianness: .big)
            for parameter in startup.parameters {
                guard !parameter.name.isEmpty else {
                    throw WireEncodingError(code: .invalidValue, field: "startup parameter name", reason: "a startup parameter name is empty")
                }
                try buffer.writeCString(parameter.name, field: "startup parameter name")
                try buffer.writeCString(parameter.value, field: "startup parameter \(parameter.name)")
            }
            buffer.writeInteger(UInt8(0))
            try buffer.patchLength(at: lengthIndex)
        case .password(let password):
            try buffer.writeMessage(type: "p") { (body: inout ByteBuffer) throws(WireEncodingError) in
                try body.writeCString(password, field: "password")
            }
        case .saslInitialResponse(let mechanism, let response):
            try buffer.writeMessage(type: "p") { (body: inout ByteBuffer) throws(WireEncodingError) in
                try body.writeCString(mechanism, field: "SASL mechanism")
                if let response {
                    body.writeInteger(Int32(truncatingIfNeeded: response.count), endianness: .big)
                    body.writeBytes(response)
                } else {
                    body.writeInteger(Int32(-1), endianness: .big)
                }
            }
        case .saslResponse(let data):
            try buffer.writeMessage(type: "p") { (body: inout ByteBuffer) throws(WireEncodingError) in
                body.writeBytes(data)
            }
        case .query(let sql):
            try buffer.writeMessage(type: "Q") { (body: inout ByteBuffer) throws(WireEncodingError) in
                try body.writeCString(sql, field: "query")
            }
        case .copyData(let payload):
            guard payload.readableBytes <= Int(Int32.max) - 4 else {
                throw WireEncodingError(code: .messageTooLarge, field: "CopyData", reason: "payload of \(payload.readableBytes) bytes does not fit a message")
            }
            Self.encodeCopyData(payload, into: &buffer)
        case .copyDone:
            Self.encodeCopyDone(into: &buffer)
        case .copyFail(let message):
            try buffer.writeMessage(type: "f") { (body: inout ByteBuffer) throws(WireEncodingError) in
                try body.writeCString(message, field: "CopyFail message")
            }
        case .parse(let statement, let query, let types):
            try Self.check(count: types.count, atMost: Int(Int16.max), "Parse parameter types")
            try buffer.writeMessage(type: "P") { (body: inout ByteBuffer) throws(WireEncodingError) in
                try body.writeCString(statement, field: "statement name")
                try body.writeCString(query, field: "query")
                body.writeInteger(Int16(types.count), endianness: .big)
                for type in types { body.writeInteger(type, endianness: .big) }
            }
        case .bind(let portal, let statement, let parameters):
            try Self.check(count: parameters.count, atMost: Int(UInt16.max), "Bind parameters")
            try buffer.writeMessage(type: "B") { (body: inout ByteBuffer) throws(WireEncodingError) in
                try body.writeCString(portal, field: "portal name")
                try body.writeCString(statement, field: "statement name")
                body.writeInteger(Int16(0), endianness: .big)  // every parameter in text format
                body.writeInteger(UInt16(parameters.count), endianness: .big)
                for parameter in parameters {
                    guard let parameter else {
                        body.writeInteger(Int32(-1), endianness: .big)
                        continue
                    }
                    let lengthIndex = body.writerIndex
                    body.writeInteger(Int32(0), endianness: .big)
                    let written = body.writeString(parameter)
                    guard written <= Int(Int32.max) else {
                        throw WireEncodingError(code: .messageTooLarge, field: "Bind parameter", reason: "\(written) bytes exceed the protocol's Int32 length")
                    }
                    body.setInteger(Int32(written), at: lengthIndex, endianness: .big)
                }
                body.writeInteger(Int16(0), endianness: .big)  // every result column in text format
            }
        case .execute(let portal, let maxRows):
            try buffer.writeMessage(type: "E") { (body: inout ByteBuffer) throws(WireEncodingError) in
                try body.writeCString(portal, field: "portal name")
                body.writeInteger(maxRows, endianness: .big)
            }
        case .sync:
            buffer.writeEmptyMessage(type: "S")
        case .flush:
            buffer.writeEmptyMessage(type: "H")
        case .terminate:
            buffer.writeEmptyMessage(type: "X")
        case .cancelRequest(let key):
            guard (4...256).contains(key.secretKey.count) else {
                throw WireEncodingError(code: .invalidValue, field: "cancel secret key", reason: "secret key is \(key.secretKey.count) bytes; expected 4 to 256")
            }
            buffer.writeInteger(Int32(12 + key.secretKey.count), endianness: .big)
            buffer.writeInteger(Self.cancelRequestCode, endianness: .big)
            buffer.writeInteger(key.processID, endianness: .big)
            buffer.writeBytes(key.secretKey)
        }
    }

    /// A count the message carries in 16 bits.
    private static func check(count: Int, atMost limit: Int, _ field: String) throws(WireEncodingError) {
        guard count <= limit else {
            throw WireEncodingError(code: .invalidValue, field: field, reason: "\(count) given; at most \(limit)")
        }
    }

    /// Appends a `CopyData` message carrying `payload`'s readable bytes.
    /// - Precondition: the payload is shorter than `Int32.max - 4` bytes.
    @inlinable
    public static func encodeCopyData(_ payload: ByteBuffer, into buffer: inout ByteBuffer) {
        precondition(payload.readableBytes <= Int(Int32.max) - 4, "CopyData payload too large for one message")
        buffer.writeInteger(UInt8(ascii: "d"))
        buffer.writeInteger(Int32(4 + payload.readableBytes), endianness: .big)
        var payload = payload
        buffer.writeBuffer(&payload)
    }

    /// Appends a `CopyDone` message.
    @inlinable
    public static func encodeCopyDone(into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(ascii: "c"))
        buffer.writeInteger(Int32(4), endianness: .big)
    }
}

/// The parameters of a `StartupMessage`, in the order they are sent.
public struct StartupMessage: Sendable, Hashable {
    public struct Parameter: Sendable, Hashable {
        public var name: String
        public var value: String
        public init(_ name: String, _ value: String) {
            self.name = name
            self.value = value
        }
    }

    public var protocolVersion: ProtocolVersion
    public var parameters: [Parameter]

    public init(protocolVersion: ProtocolVersion = .v3_0, parameters: [Parameter]) {
        self.protocolVersion = protocolVersion
        self.parameters = parameters
    }

    /// The usual parameters, in this order: `user`, `database`, `replication`,
    /// `application_name`, `options`, `client_encoding`, then `additional`.
    ///
    /// - Parameters:
    ///   - replication: `"database"` for a logical walsender, `"true"` for a physical one, `nil`
    ///     for a normal backend.
    ///   - clientEncoding: `UTF8` by default; Ferry decodes all text as UTF-8.
    public init(user: String, database: String?, replication: String? = nil, applicationName: String? = nil,
                options: String? = nil, clientEncoding: String? = "UTF8", additional: [Parameter] = [],
                protocolVersion: ProtocolVersion = .v3_0) {
        var parameters = [Parameter("user", user)]
        if let database { parameters.append(Parameter("database", database)) }
        if let replication { parameters.append(Parameter("replication", replication)) }
        if let applicationName { parameters.append(Parameter("application_name", applicationName)) }
        if let options { parameters.append(Parameter("options", options)) }
        if let clientEncoding { parameters.append(Parameter("client_encoding", clientEncoding)) }
        parameters += additional
        self.init(protocolVersion: protocolVersion, parameters: parameters)
    }
}

/// A message that cannot be encoded: a NUL inside a string field, or a message too long.
public struct WireEncodingError: Error, Sendable, Hashable, CustomStringConvertible {
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        enum Base: Sendable, Hashable {
            case nulInString
            case messageTooLarge
            case invalidValue
        }

        let base: Base
        private init(_ base: Base) { self.base = base }

        /// A string field contains a NUL byte, which would end it early on the wire.
        public static let nulInString = Self(.nulInString)
        /// The message would exceed `Int32.max` bytes.
        public static let messageTooLarge = Self(.messageTooLarge)
        /// A field holds a value the protocol does not allow.
        public static let invalidValue = Self(.invalidValue)

        public var description: String {
            switch base {
            case .nulInString: "nulInString"
            case .messageTooLarge: "messageTooLarge"
            case .invalidValue: "invalidValue"
            }
        }
    }

    public var code: Code
    /// Which field is at fault (never its value, which may be a password).
    public var field: String
    public var reason: String

    public init(code: Code, field: String, reason: String) {
        self.code = code
        self.field = field
        self.reason = reason
    }

    public var description: String { "cannot encode \(field) (\(code)): \(reason)" }
}

extension ByteBuffer {
    mutating func writeCString(_ string: String, field: String) throws(WireEncodingError) {
        if string.utf8.contains(0) {
            throw WireEncodingError(code: .nulInString, field: field, reason: "contains a NUL byte, which PostgreSQL strings cannot hold")
        }
        writeString(string)
        writeInteger(UInt8(0))
    }

    /// Writes the Int32 length (counting itself) of everything written since `index`.
    mutating func patchLength(at index: Int) throws(WireEncodingError) {
        let length = writerIndex - index
        guard length <= Int(Int32.max) else {
            throw WireEncodingError(code: .messageTooLarge, field: "message", reason: "\(length) bytes exceed the protocol's Int32 length")
        }
        setInteger(Int32(length), at: index, endianness: .big)
    }

    mutating func writeMessage(type: Unicode.Scalar, _ body: (inout ByteBuffer) throws(WireEncodingError) -> Void) throws(WireEncodingError) {
        writeInteger(UInt8(type.value))
        let lengthIndex = writerIndex
        writeInteger(Int32(0), endianness: .big)
        try body(&self)
        try patchLength(at: lengthIndex)
    }

    mutating func writeEmptyMessage(type: Unicode.Scalar) {
        writeInteger(UInt8(type.value))
        writeInteger(Int32(4), endianness: .big)
    }
}

extension FrontendMessage: CustomStringConvertible, CustomReflectable {
    /// Safe to log: passwords and SASL payloads (which carry proofs) are shown as `****`,
    /// query text and copy payloads by size only.
    public var description: String {
        switch self {
        case .sslRequest: "SSLRequest"
        case .startup(let startup):
            "StartupMessage(\(startup.protocolVersion), \(startup.parameters.map { "\($0.name)=\($0.value)" }.joined(separator: " ")))"
        case .password: "PasswordMessage(****)"
        case .saslInitialResponse(let mechanism, let response):
            "SASLInitialResponse(\(mechanism), \(response == nil ? "none" : "****"))"
        case .saslResponse: "SASLResponse(****)"
        case .query(let sql): "Query(\(sql.utf8.count) bytes)"
        case .copyData(let payload): "CopyData(\(payload.readableBytes) bytes)"
        case .copyDone: "CopyDone"
        case .copyFail(let message): "CopyFail(\(message))"
        case .parse(let statement, let query, let types): "Parse(\(statement.isEmpty ? "unnamed" : statement), \(query.utf8.count) bytes, \(types.count) types)"
        case .bind(let portal, let statement, let parameters):
            "Bind(\(portal.isEmpty ? "unnamed" : portal), \(statement.isEmpty ? "unnamed" : statement), \(parameters.count) parameters)"
        case .execute(let portal, let maxRows): "Execute(\(portal.isEmpty ? "unnamed" : portal), \(maxRows))"
        case .sync: "Sync"
        case .flush: "Flush"
        case .terminate: "Terminate"
        case .cancelRequest(let key): "CancelRequest(pid \(key.processID))"
        }
    }

    public var customMirror: Mirror { Mirror(self, children: ["message": description], displayStyle: .enum) }
}
