/// A failure of the initial snapshot: what went wrong, and what to do about it.
///
/// Like `PGConnectionError`: `code` says which kind of problem it is (for retry policies and
/// exit codes), `message` names it (the table, the chunk), `fix` says what to change. Row
/// values never appear in these texts.
public struct SnapshotError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Sendable {
            case invalidTableName, tableNotFound, notATable, publicationNotFound, snapshotNotAvailable,
                 malformedCopyData, columnMismatch, valueDecoding, invalidOptions
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// A table name that cannot be parsed (`schema.table`, `schema.*`, `"Quoted"."Name"`).
        public static let invalidTableName = Self(.invalidTableName)
        /// A named table does not exist on the source.
        public static let tableNotFound = Self(.tableNotFound)
        /// The name belongs to a view, sequence, index or foreign table, which cannot be replicated.
        public static let notATable = Self(.notATable)
        /// The publication does not exist.
        public static let publicationNotFound = Self(.publicationNotFound)
        /// The exported snapshot cannot be imported (the exporting connection ran another
        /// command, closed, or the name is wrong).
        public static let snapshotNotAvailable = Self(.snapshotNotAvailable)
        /// The server's binary COPY stream broke its framing.
        public static let malformedCopyData = Self(.malformedCopyData)
        /// A COPY row had a different number of columns than the table's schema.
        public static let columnMismatch = Self(.columnMismatch)
        /// A column value could not be decoded.
        public static let valueDecoding = Self(.valueDecoding)
        /// The snapshot options are out of range.
        public static let invalidOptions = Self(.invalidOptions)

        public var description: String { base.rawValue }
    }

    public var code: Code
    /// What went wrong, naming the table (and chunk) concerned.
    public var message: String
    /// What to change so that it works.
    public var fix: String?
    /// The underlying error, when there is one (its description; never row data).
    public var underlying: String?

    public init(_ code: Code, _ message: String, fix: String? = nil, underlying: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.fix = fix
        self.underlying = underlying.map { "\($0)" }
    }

    public var description: String {
        var text = message
        if let underlying { text += " (\(underlying))" }
        if let fix { text += "\nFix: \(fix)" }
        return text
    }
}
