import FerryCore
import Logging

/// The SQLite side of one source table definition: its quoted names, how rows are located, and
/// its prepared statements, built once per statement shape and reused for every row.
///
/// Rows are located by the SQLite primary key when the table has one (the replica identity's
/// columns under `DEFAULT` or `INDEX` identity). Under `FULL` identity PostgreSQL marks every
/// column as identity and sends whole old rows, so the SQLite table has no primary key and a
/// row is located by all its old values (`IS`, so NULLs match), one row at a time (`rowid`).
final class SQLiteTable {
    /// What a statement does; `omitted` lists the columns left out of the row written
    /// (unchanged TOAST), `unmatched` the old columns not compared (unchanged TOAST, or not sent).
    struct StatementKey: Hashable {
        enum Kind: Hashable { case upsert, updateByKey, updateByMatch, deleteByKey, deleteByMatch }
        var kind: Kind
        var omitted: [Int] = []
        var unmatched: [Int] = []
    }

    /// The definition this table was built for.
    let schema: TableSchema
    /// Every schema object with the same definition seen for this table (kept alive so that
    /// their `ObjectIdentifier`s stay unique).
    var aliases: [TableSchema]
    let quotedName: String
    let quotedColumns: [String]
    /// Indexes (in `schema.columns`) of the SQLite primary key; empty when there is none.
    let keyIndexes: [Int]
    /// True under `FULL` identity: updates and deletes locate a row by all its old values.
    var locatesByAllColumns: Bool { schema.replicaIdentity == .full }
    /// Warned once when a change cannot be applied for want of a key.
    var warnedNoKey = false

    private var statements: [StatementKey: SQLiteStatement] = [:]
    /// The statement most rows use: an upsert of every column.
    private var upsertAll: SQLiteStatement?

    init(schema: TableSchema) {
        self.schema = schema
        self.aliases = [schema]
        self.quotedName = SQLiteTable.sqliteName(of: schema).sqliteQuotedIdentifier
        self.quotedColumns = schema.columns.map(\.name.sqliteQuotedIdentifier)
        self.keyIndexes = SQLiteTable.primaryKeyIndexes(of: schema)
    }

    /// The SQLite table of a source table: `schema.table`, as one identifier.
    static func sqliteName(of schema: TableSchema) -> String { schema.qualifiedName }

    /// The columns that form the SQLite primary key: the replica identity, unless it is `FULL`
    /// (every column, not unique) or `NOTHING`.
    static func primaryKeyIndexes(of schema: TableSchema) -> [Int] {
        switch schema.replicaIdentity {
        case .full, .nothing: []
        case .default, .index: schema.keyColumnIndexes
        }
    }

    // MARK: DDL

    static func createTableSQL(for schema: TableSchema, named name: String) -> String {
        var parts = schema.columns.map { "\($0.name.sqliteQuotedIdentifier) \(SQLiteTypeMapping.declaredType(forTypeOID: $0.typeOID))" }
        let key = primaryKeyIndexes(of: schema)
        if !key.isEmpty {
            parts.append("PRIMARY KEY (" + key.map { schema.columns[$0].name.sqliteQuotedIdentifier }.joined(separator: ", ") + ")")
        }
        return "CREATE TABLE \(name.sqliteQuotedIdentifier) (" + parts.joined(separator: ", ") + ")"
    }

    /// Makes the SQLite table match `schema`: creates it, adds missing columns, or rebuilds it
    /// when its primary key or a column's declared type differs (SQLite cannot alter those).
    /// Columns the SQLite table has beyond the schema's are kept, except by a rebuild.
    static func reconcile(_ schema: TableSchema, in db: SQLiteConnection, logger: Logger) throws {
        let name = sqliteName(of: schema)
        let existing = try db.query("SELECT name, type, pk FROM pragma_table_info(?)", [.text(name)])
        guard !existing.isEmpty else {
            try db.execute(createTableSQL(for: schema, named: name))
            logger.info("replica table created", metadata: ["table": "\(name)"])
            return
        }
        var types: [String: String] = [:]
        var keyed: [(position: Int64, name: String)] = []
        for row in existing {
            let column = row[0].text ?? ""
            types[column] = (row[1].text ?? "").uppercased()
            if let position = row[2].integer, position > 0 { keyed.append((position, column)) }
        }
        let existingKey = keyed.sorted { $0.position < $1.position }.map(\.name)
        let wantedKey = primaryKeyIndexes(of: schema).map { schema.columns[$0].name }
        let retyped = schema.columns.filter { column in
            types[column.name].map { $0 != SQLiteTypeMapping.declaredType(forTypeOID: column.typeOID) } ?? false
        }
        if existingKey != wantedKey || !retyped.isEmpty {
            try rebuild(schema, existingColumns: Set(types.keys), in: db)
            logger.warning("replica table rebuilt: its primary key or column types changed", metadata: [
                "table": "\(name)", "key": "\(wantedKey)", "retyped": "\(retyped.map(\.name))",
            ])
            return
        }
        for column in schema.columns where types[column.name] == nil {
            try db.execute("ALTER TABLE \(name.sqliteQuotedIdentifier) ADD COLUMN \(column.name.sqliteQuotedIdentifier) \(SQLiteTypeMapping.declaredType(forTypeOID: column.typeOID))")
            logger.info("replica column added", metadata: ["table": "\(name)", "column": "\(column.name)"])
        }
    }

    /// SQLite's way to change a primary key or declared types: a new table, the rows copied
    /// (the columns both have; later rows win on a key conflict), the old table dropped.
    private static func rebuild(_ schema: TableSchema, existingColumns: Set<String>, in db: SQLiteConnection) throws {
        let name = sqliteName(of: schema)
        let temporary = "_ferry_rebuild"
        try db.execute("DROP TABLE IF EXISTS \(temporary.sqliteQuotedIdentifier)")
        try db.execute(createTableSQL(for: schema, named: temporary))
        let common = schema.columns.map(\.name).filter(existingColumns.contains).map(\.sqliteQuotedIdentifier).joined(separator: ", ")
        if !common.isEmpty {
            let verb = primaryKeyIndexes(of: schema).isEmpty ? "INSERT" : "INSERT OR REPLACE"
            try db.execute("\(verb) INTO \(temporary.sqliteQuotedIdentifier) (\(common)) SELECT \(common) FROM \(name.sqliteQuotedIdentifier) ORDER BY rowid")
        }
        try db.execute("DROP TABLE \(name.sqliteQuotedIdentifier)")
        try db.execute("ALTER TABLE \(temporary.sqliteQuotedIdentifier) RENAME TO \(name.sqliteQuotedIdentifier)")
    }

    // MARK: Statements

    /// The prepared statement for `key`, built on first use.
    func statement(_ key: StatementKey, in db: SQLiteConnection) throws -> SQLiteStatement {
        if key.kind == .upsert, key.omitted.isEmpty, let upsertAll { return upsertAll }
        if let statement = statements[key] { return statement }
        let statement = try db.prepareUncached(sql(for: key))
        statements[key] = statement
        if key.kind == .upsert, key.omitted.isEmpty { upsertAll = statement }
        return statement
    }

    /// The SQL of a statement; parameters are the written columns in order, then the located
    /// (key or matched) columns in order.
    func sql(for key: StatementKey) -> String {
        let written = schema.columns.indices.filter { !key.omitted.contains($0) }
        switch key.kind {
        case .upsert:
            var sql = "INSERT INTO \(quotedName) (" + written.map { quotedColumns[$0] }.joined(separator: ", ")
                + ") VALUES (" + Array(repeating: "?", count: written.count).joined(separator: ", ") + ")"
            if !keyIndexes.isEmpty {
                sql += " ON CONFLICT (" + keyIndexes.map { quotedColumns[$0] }.joined(separator: ", ") + ")"
                let updated = written.filter { !keyIndexes.contains($0) }
                if updated.isEmpty {
                    sql += " DO NOTHING"
                } else {
                    sql += " DO UPDATE SET " + updated.map { "\(quotedColumns[$0]) = excluded.\(quotedColumns[$0])" }.joined(separator: ", ")
                }
            }
            return sql
        case .updateByKey:
            return "UPDATE \(quotedName) SET " + written.map { "\(quotedColumns[$0]) = ?" }.joined(separator: ", ")
                + " WHERE " + keyIndexes.map { "\(quotedColumns[$0]) = ?" }.joined(separator: " AND ")
        case .updateByMatch:
            return "UPDATE \(quotedName) SET " + written.map { "\(quotedColumns[$0]) = ?" }.joined(separator: ", ")
                + " WHERE rowid = (SELECT rowid FROM \(quotedName) WHERE " + matchCondition(key) + " LIMIT 1)"
        case .deleteByKey:
            return "DELETE FROM \(quotedName) WHERE " + keyIndexes.map { "\(quotedColumns[$0]) = ?" }.joined(separator: " AND ")
        case .deleteByMatch:
            return "DELETE FROM \(quotedName) WHERE rowid = (SELECT rowid FROM \(quotedName) WHERE " + matchCondition(key) + " LIMIT 1)"
        }
    }

    private func matchCondition(_ key: StatementKey) -> String {
        schema.columns.indices.filter { !key.unmatched.contains($0) }
            .map { "\(quotedColumns[$0]) IS ?" }.joined(separator: " AND ")
    }
}
