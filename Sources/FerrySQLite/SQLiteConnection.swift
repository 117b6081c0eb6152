import CSQLite

/// A failed SQLite call: SQLite's (extended) result code, its message, and the SQL being run.
public struct SQLiteError: Error, CustomStringConvertible, Sendable {
    /// The extended result code (`SQLITE_CONSTRAINT_PRIMARYKEY`, `SQLITE_BUSY`…).
    public var code: Int32
    public var message: String
    /// The statement that failed, when there was one.
    public var sql: String?

    public init(code: Int32, message: String, sql: String? = nil) {
        self.code = code
        self.message = message
        self.sql = sql
    }

    /// The primary result code (`SQLITE_CONSTRAINT` for `SQLITE_CONSTRAINT_PRIMARYKEY`).
    public var primaryCode: Int32 { code & 0xFF }

    public var description: String {
        var text = "SQLite error \(code): \(message)"
        if let sql { text += " (in: \(sql))" }
        return text
    }
}

/// A value as SQLite stores it (its five storage classes).
public enum SQLiteValue: Sendable, Hashable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)
    case blob([UInt8])

    public var integer: Int64? { if case .integer(let v) = self { v } else { nil } }
    public var real: Double? { if case .real(let v) = self { v } else { nil } }
    public var text: String? { if case .text(let v) = self { v } else { nil } }
    public var blob: [UInt8]? { if case .blob(let v) = self { v } else { nil } }
    public var isNull: Bool { if case .null = self { true } else { false } }
}

/// One connection to a SQLite database file: a small, safe layer over the sqlite3 C API.
///
/// Not `Sendable`: a connection belongs to one owner (an actor, or a test), which uses it from
/// one task at a time; it is opened in SQLite's multi-thread mode (`SQLITE_OPEN_NOMUTEX`), which
/// allows that owner to move between threads. Prepared statements are cached by their SQL text
/// and reused (``prepare(_:)``), so a hot path binds and steps without parsing SQL again.
///
/// ```swift
/// let db = try SQLiteConnection(path: "replica.db")
/// try db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT)")
/// try db.run("INSERT INTO t VALUES (?, ?)", [.integer(1), .text("one")])
/// let rows = try db.query("SELECT name FROM t WHERE id = ?", [.integer(1)])
/// ```
public final class SQLiteConnection {
    /// The file's path (`:memory:` for an in-memory database).
    public let path: String
    private var handle: OpaquePointer?
    private var statements: [String: SQLiteStatement] = [:]

    /// Opens (and by default creates) the database at `path`.
    ///
    /// - Parameters:
    ///   - readOnly: open without write access (the file must exist).
    ///   - busyTimeout: how long a statement waits for another connection's lock, in milliseconds.
    public init(path: String, readOnly: Bool = false, busyTimeoutMilliseconds: Int32 = 10_000) throws {
        self.path = path
        var flags = SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE
        flags |= readOnly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)
        var db: OpaquePointer?
        let rc = sqlite3_open_v2(path, &db, flags, nil)
        guard rc == SQLITE_OK, let db else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(rc))
            sqlite3_close_v2(db)
            throw SQLiteError(code: rc, message: "cannot open \(path): \(message)")
        }
        handle = db
        sqlite3_extended_result_codes(db, 1)
        sqlite3_busy_timeout(db, busyTimeoutMilliseconds)
    }

    deinit {
        // Statements first, then the connection; an open transaction is rolled back.
        statements.removeAll()
        if let handle { sqlite3_close_v2(handle) }
    }

    /// Closes the connection now (an open transaction is rolled back). Later calls throw.
    public func close() {
        statements.removeAll()
        if let handle { sqlite3_close_v2(handle) }
        handle = nil
    }

    /// SQLite's library version, e.g. `3.40.1`.
    public static var libraryVersion: String { String(cString: sqlite3_libversion()) }

    /// SQLite's library version as a number, e.g. `3040001`.
    public static var libraryVersionNumber: Int32 { sqlite3_libversion_number() }

    // MARK: Running SQL

    /// Runs one or more statements separated by semicolons, without parameters (DDL, pragmas).
    public func execute(_ sql: String) throws {
        let db = try open()
        var errorMessage: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(db, sql, nil, nil, &errorMessage)
        if rc != SQLITE_OK {
            let message = errorMessage.map { String(cString: $0) } ?? String(cString: sqlite3_errstr(rc))
            sqlite3_free(errorMessage)
            throw SQLiteError(code: sqlite3_extended_errcode(db), message: message, sql: sql)
        }
    }

    /// The prepared statement for `sql`, from the cache or newly prepared (and then cached).
    /// The statement is reset and its bindings cleared before it is returned.
    public func prepare(_ sql: String) throws -> SQLiteStatement {
        if let statement = statements[sql] {
            statement.reset()
            return statement
        }
        let statement = try prepareUncached(sql)
        statements[sql] = statement
        return statement
    }

    /// A prepared statement that is not cached (freed when the last reference goes).
    public func prepareUncached(_ sql: String) throws -> SQLiteStatement {
        let db = try open()
        var pointer: OpaquePointer?
        let rc = sqlite3_prepare_v3(db, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &pointer, nil)
        guard rc == SQLITE_OK, let pointer else {
            throw SQLiteError(code: sqlite3_extended_errcode(db), message: String(cString: sqlite3_errmsg(db)), sql: sql)
        }
        return SQLiteStatement(pointer, sql: sql)
    }

    /// Forgets every cached statement (after a schema change, say; SQLite would re-prepare them
    /// anyway, this frees them).
    public func clearStatementCache() {
        statements.removeAll()
    }

    /// Runs one statement (cached) with `bindings` until it is done; returns the number of
    /// rows it changed.
    @discardableResult
    public func run(_ sql: String, _ bindings: [SQLiteValue] = []) throws -> Int {
        let statement = try prepare(sql)
        for (index, value) in bindings.enumerated() {
            try statement.bind(value, at: Int32(index + 1))
        }
        while try statement.step() {}
        let changed = changes
        statement.reset()
        return changed
    }

    /// Runs one query (cached) and returns all its rows.
    public func query(_ sql: String, _ bindings: [SQLiteValue] = []) throws -> [[SQLiteValue]] {
        let statement = try prepare(sql)
        for (index, value) in bindings.enumerated() {
            try statement.bind(value, at: Int32(index + 1))
        }
        var rows: [[SQLiteValue]] = []
        while try statement.step() {
            rows.append((0..<statement.columnCount).map { statement.value(at: $0) })
        }
        statement.reset()
        return rows
    }

    /// Runs `body` in a transaction (`BEGIN IMMEDIATE` … `COMMIT`), rolled back if it throws.
    @discardableResult
    public func transaction<T>(_ body: () throws -> T) throws -> T {
        try run("BEGIN IMMEDIATE")
        do {
            let result = try body()
            try run("COMMIT")
            return result
        } catch {
            if isInTransaction { _ = try? run("ROLLBACK") }
            throw error
        }
    }

    /// True while a transaction is open (SQLite is not in autocommit mode).
    public var isInTransaction: Bool {
        guard let handle else { return false }
        return sqlite3_get_autocommit(handle) == 0
    }

    /// Rows changed by the last INSERT, UPDATE or DELETE.
    public var changes: Int {
        guard let handle else { return 0 }
        return Int(sqlite3_changes64(handle))
    }

    /// The rowid of the last inserted row.
    public var lastInsertRowID: Int64 {
        guard let handle else { return 0 }
        return sqlite3_last_insert_rowid(handle)
    }

    // MARK: Internals

    func open() throws -> OpaquePointer {
        guard let handle else { throw SQLiteError(code: SQLITE_MISUSE, message: "the connection to \(path) is closed") }
        return handle
    }
}

/// A prepared statement of a ``SQLiteConnection``: bind parameters (1-based), step, read
/// columns (0-based), reset. Belongs to its connection's owner, like the connection.
public final class SQLiteStatement {
    let pointer: OpaquePointer
    public let sql: String

    // The connection is closed with `sqlite3_close_v2`, which keeps it alive (as a zombie)
    // until its last statement is finalized, so a statement never outlives its handle.
    init(_ pointer: OpaquePointer, sql: String) {
        self.pointer = pointer
        self.sql = sql
    }

    deinit {
        sqlite3_finalize(pointer)
    }

    /// Resets the statement to run again and clears its bindings.
    public func reset() {
        sqlite3_reset(pointer)
        sqlite3_clear_bindings(pointer)
    }

    /// Number of `?` parameters.
    public var parameterCount: Int32 { sqlite3_bind_parameter_count(pointer) }

    // MARK: Binding (1-based)

    public func bindNull(at index: Int32) throws {
        try check(sqlite3_bind_null(pointer, index))
    }

    public func bind(_ value: Int64, at index: Int32) throws {
        try check(sqlite3_bind_int64(pointer, index, value))
    }

    /// Note: SQLite stores a NaN as NULL; bind NaN as text if it must survive.
    public func bind(_ value: Double, at index: Int32) throws {
        try check(sqlite3_bind_double(pointer, index, value))
    }

    public func bind(_ value: String, at index: Int32) throws {
        var value = value
        try value.withUTF8 { try bindText(utf8: $0, at: index) }
    }

    /// Binds UTF-8 text (copied by SQLite).
    public func bindText(utf8: UnsafeBufferPointer<UInt8>, at index: Int32) throws {
        let rc = utf8.withMemoryRebound(to: CChar.self) { chars in
            // An empty buffer may have a nil base address: SQLite would then bind NULL.
            sqlite3_bind_text64(pointer, index, chars.baseAddress ?? emptyCString, sqlite3_uint64(chars.count),
                                sqliteTransient, UInt8(SQLITE_UTF8))
        }
        try check(rc)
    }

    /// Binds a blob (copied by SQLite); an empty array is an empty blob, not NULL.
    public func bind(_ value: [UInt8], at index: Int32) throws {
        let rc = value.withUnsafeBytes { bytes in
            bytes.baseAddress.map {
                sqlite3_bind_blob64(pointer, index, $0, sqlite3_uint64(bytes.count), sqliteTransient)
            } ?? sqlite3_bind_zeroblob(pointer, index, 0)
        }
        try check(rc)
    }

    public func bind(_ value: SQLiteValue, at index: Int32) throws {
        switch value {
        case .null: try bindNull(at: index)
        case .integer(let v): try bind(v, at: index)
        case .real(let v): try bind(v, at: index)
        case .text(let v): try bind(v, at: index)
        case .blob(let v): try bind(v, at: index)
        }
    }

    // MARK: Stepping

    /// Runs the statement one step: true when a row is available, false when done.
    @discardableResult
    public func step() throws -> Bool {
        let rc = sqlite3_step(pointer)
        switch rc {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default:
            let error = currentError(code: rc)
            sqlite3_reset(pointer)
            throw error
        }
    }

    // MARK: Columns (0-based)

    public var columnCount: Int32 { sqlite3_column_count(pointer) }

    public func columnName(at index: Int32) -> String {
        sqlite3_column_name(pointer, index).map { String(cString: $0) } ?? ""
    }

    public func isNull(at index: Int32) -> Bool { sqlite3_column_type(pointer, index) == SQLITE_NULL }

    public func int64(at index: Int32) -> Int64 { sqlite3_column_int64(pointer, index) }

    public func double(at index: Int32) -> Double { sqlite3_column_double(pointer, index) }

    public func text(at index: Int32) -> String? {
        guard let bytes = sqlite3_column_text(pointer, index) else { return nil }
        let count = Int(sqlite3_column_bytes(pointer, index))
        return String(decoding: UnsafeBufferPointer(start: bytes, count: count), as: UTF8.self)
    }

    public func blob(at index: Int32) -> [UInt8] {
        let count = Int(sqlite3_column_bytes(pointer, index))
        guard count > 0, let bytes = sqlite3_column_blob(pointer, index) else { return [] }
        return Array(UnsafeRawBufferPointer(start: bytes, count: count))
    }

    /// The column's value in its storage class.
    public func value(at index: Int32) -> SQLiteValue {
        switch sqlite3_column_type(pointer, index) {
        case SQLITE_INTEGER: .integer(int64(at: index))
        case SQLITE_FLOAT: .real(double(at: index))
        case SQLITE_TEXT: .text(text(at: index) ?? "")
        case SQLITE_BLOB: .blob(blob(at: index))
        default: .null
        }
    }

    private func check(_ rc: Int32) throws {
        if rc != SQLITE_OK { throw currentError(code: rc) }
    }

    private func currentError(code: Int32) -> SQLiteError {
        guard let db = sqlite3_db_handle(pointer) else {
            return SQLiteError(code: code, message: String(cString: sqlite3_errstr(code)), sql: sql)
        }
        return SQLiteError(code: sqlite3_extended_errcode(db), message: String(cString: sqlite3_errmsg(db)), sql: sql)
    }
}

/// `SQLITE_TRANSIENT`: SQLite copies the bound bytes before the bind call returns.
private let sqliteTransient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

/// A zero-length C string for binding empty text.
nonisolated(unsafe) private let emptyCString: UnsafePointer<CChar> = {
    let pointer = UnsafeMutablePointer<CChar>.allocate(capacity: 1)
    pointer.initialize(to: 0)
    return UnsafePointer(pointer)
}()

extension String {
    /// `"name"` with embedded quotes doubled: a SQLite identifier.
    var sqliteQuotedIdentifier: String { quoted(by: "\"") }

    /// `'text'` with embedded quotes doubled: a SQLite string literal.
    var sqliteQuotedLiteral: String { quoted(by: "'") }

    private func quoted(by quote: Character) -> String {
        var out = String(quote)
        for character in self {
            out.append(character)
            if character == quote { out.append(quote) }
        }
        out.append(quote)
        return out
    }
}
