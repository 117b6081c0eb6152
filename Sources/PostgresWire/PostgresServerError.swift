import NIOCore

/// The type byte of one field of an `ErrorResponse` or `NoticeResponse`
/// (protocol "Error and Notice Message Fields").
///
/// Unknown field types are kept as they come: the protocol says frontends must ignore them.
public struct ServerMessageField: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    init(_ character: Unicode.Scalar) { self.rawValue = UInt8(character.value) }

    /// `S`: ERROR, FATAL, PANIC, WARNING, NOTICE, DEBUG, INFO or LOG — possibly localized.
    public static let localizedSeverity = Self("S")
    /// `V`: the same, never localized (9.6+).
    public static let severity = Self("V")
    /// `C`: the SQLSTATE code.
    public static let sqlState = Self("C")
    /// `M`: the primary message.
    public static let message = Self("M")
    /// `D`: detail.
    public static let detail = Self("D")
    /// `H`: hint.
    public static let hint = Self("H")
    /// `P`: 1-based character position in the query string.
    public static let position = Self("P")
    /// `p`: position in an internally generated query.
    public static let internalPosition = Self("p")
    /// `q`: the internally generated query.
    public static let internalQuery = Self("q")
    /// `W`: context (call stack traceback).
    public static let `where` = Self("W")
    /// `s`: schema name.
    public static let schemaName = Self("s")
    /// `t`: table name.
    public static let tableName = Self("t")
    /// `c`: column name.
    public static let columnName = Self("c")
    /// `d`: data type name.
    public static let dataTypeName = Self("d")
    /// `n`: constraint name.
    public static let constraintName = Self("n")
    /// `F`: source file name.
    public static let file = Self("F")
    /// `L`: source line number.
    public static let line = Self("L")
    /// `R`: source routine name.
    public static let routine = Self("R")

    public var description: String { WireDecodingError.describe(type: rawValue) }

    static func decodeFields(_ reader: inout WireReader) throws(WireDecodingError) -> [ServerMessageField: String] {
        var fields: [ServerMessageField: String] = [:]
        while true {
            let type = try reader.readUInt8("field type")
            if type == 0 { return fields }
            fields[ServerMessageField(rawValue: type)] = try reader.readCString("field value")
        }
    }
}

/// An `ErrorResponse` (or a notice) from the server, with its fields named.
///
/// `code` is the SQLSTATE (`42P01`, `55006`, …): the stable way to tell errors apart. The
/// `description` never contains query parameter values; it shows what the server chose to say
/// (message, detail, hint), which may quote data from the failing row — log it as such.
public struct PostgresServerError: Error, Sendable, Hashable, CustomStringConvertible {
    /// All fields as received, including ones without a property below.
    public var fields: [ServerMessageField: String]

    public init(fields: [ServerMessageField: String]) { self.fields = fields }

    /// The non-localized severity (`V`), else the localized one (`S`), else `ERROR`.
    public var severity: String { fields[.severity] ?? fields[.localizedSeverity] ?? "ERROR" }
    public var localizedSeverity: String? { fields[.localizedSeverity] }
    /// SQLSTATE; `XX000` (internal_error) when the server sent none.
    public var sqlState: String { fields[.sqlState] ?? "XX000" }
    public var message: String { fields[.message] ?? "" }
    public var detail: String? { fields[.detail] }
    public var hint: String? { fields[.hint] }
    public var position: Int? { fields[.position].flatMap { Int($0) } }
    public var internalPosition: Int? { fields[.internalPosition].flatMap { Int($0) } }
    public var internalQuery: String? { fields[.internalQuery] }
    public var `where`: String? { fields[.where] }
    public var schemaName: String? { fields[.schemaName] }
    public var tableName: String? { fields[.tableName] }
    public var columnName: String? { fields[.columnName] }
    public var dataTypeName: String? { fields[.dataTypeName] }
    public var constraintName: String? { fields[.constraintName] }
    public var file: String? { fields[.file] }
    public var line: Int? { fields[.line].flatMap { Int($0) } }
    public var routine: String? { fields[.routine] }

    /// FATAL or PANIC: the server closes the connection after sending it.
    public var isFatal: Bool { severity == "FATAL" || severity == "PANIC" }

    public var description: String {
        var text = "\(severity): \(message) (SQLSTATE \(sqlState))"
        if let detail { text += "\nDETAIL: \(detail)" }
        if let hint { text += "\nHINT: \(hint)" }
        return text
    }
}
