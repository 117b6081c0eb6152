import FerryCore
import Logging
import PostgresWire

/// The embedded default destination: a SQLite replica of the published tables
/// (`sqlite:PATH`, `./ferry-replica.db` by default).
///
/// ## Tables
/// Each source table becomes one SQLite table named `schema.table` (one identifier, quoted:
/// `"public.users"`), created on `snapshotTableStarted` or its first change, with the column
/// types below and a `PRIMARY KEY` on the replica identity columns (none under
/// `FULL` or `NOTHING` identity). A table that already exists is reconciled with the source's
/// definition: missing columns are added; a different primary key or declared type makes Ferry
/// rebuild the table (SQLite cannot alter those). Ferry owns these tables.
///
/// ## Types
/// A column's declared type (hence its SQLite affinity) comes from its PostgreSQL type OID;
/// each value is bound by its typed ``Value``:
///
/// | PostgreSQL type | SQLite column | stored value |
/// |---|---|---|
/// | `bool` | `INTEGER` | `1` / `0` |
/// | `int2`, `int4`, `int8`, `oid`, `xid`, `cid` | `INTEGER` | the integer |
/// | `float4`, `float8` | `REAL` | the double (`float4` via its shortest decimal, so `1.1` stays `1.1`); ±Infinity as SQLite's `Inf`; **NaN as the text `'NaN'`** (SQLite would store a NaN double as NULL) |
/// | `numeric` | `TEXT` | exact decimal text, scale kept (`'12.50'`, `'NaN'`) |
/// | `money` | `TEXT` | exact decimal of the smallest unit / 100 (`'-1234.56'`) |
/// | `text`, `varchar`, `bpchar`, `name`, `"char"`, `xml`, enums, `citext` | `TEXT` | the string |
/// | `bytea` | `BLOB` | the bytes |
/// | `date`, `time`, `timetz`, `timestamp`, `interval` | `TEXT` | PostgreSQL's ISO text (`'2024-02-29'`, `'13:45:00'`, `'2024-02-29 13:45:00.5'`, `'1 day 02:00:00'`); dates, times and timestamps are readable by SQLite's date functions |
/// | `timestamptz` | `TEXT` | UTC, with the offset spelled `+00:00` so SQLite's date functions read it (`'2024-02-29 13:45:00.5+00:00'`); `'infinity'`, `'-infinity'` |
/// | `uuid` | `TEXT` | `'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'` |
/// | `json`, `jsonb` | `TEXT` | the document (usable with SQLite's JSON functions) |
/// | arrays | `TEXT` | PostgreSQL's array text (`'{1,2,NULL}'`) |
/// | `inet`, `cidr`, `macaddr`, `bit`, `tsvector`, ranges, composites, domains, extension types… | `TEXT` | PostgreSQL's text form (a binary-only unknown value as a `BLOB`) |
/// | NULL | — | `NULL` |
///
/// SQLite tables are not `STRICT`, so a value keeps its storage class even when a column's
/// declared type changes later.
///
/// ## Applying changes
/// - insert and snapshot row: `INSERT … ON CONFLICT (key) DO UPDATE` (an upsert), so rows
///   delivered again (a resumed snapshot chunk) do not duplicate. Without a key (identity
///   `FULL` or `NOTHING`): a plain insert, so rows of a resumed snapshot chunk can duplicate
///   (streamed transactions cannot: they are skipped by position).
/// - update: by the old key when the key changed (the old row was sent), else an upsert by the
///   new key. Columns that are `.unchangedToast` are left out of the statement, so they keep
///   their stored value. **A row that is missing is inserted** (its unchanged-TOAST columns then
///   NULL, since their value was never sent; logged). Under `FULL` identity the row is located by
///   all its old values and updated, or inserted when missing.
/// - delete: by key; under `FULL` identity, one row matching all old values. A table with
///   neither (identity `NOTHING`, or `DEFAULT` without a primary key — PostgreSQL refuses updates
///   and deletes on such published tables) logs the change as skipped.
/// - truncate: `DELETE FROM` each table.
/// - schema change: renames (table, column) and dropped columns are applied with `ALTER TABLE`
///   (a column SQLite cannot drop — part of the key or of an index — is kept and logged);
///   added columns with `ADD COLUMN`; a changed key or type rebuilds the table.
/// - `pg_logical_emit_message` messages are not stored.
///
/// ## Transactions and position (exactly-once)
/// A source transaction is applied inside a SQLite transaction, and its commit writes its
/// `endLSN` into `_ferry_position(pipeline TEXT PRIMARY KEY, lsn TEXT)` in the **same** SQLite
/// transaction. `open()` reads it back, and `begin`s of transactions already applied are
/// skipped, so a transaction delivered again is never applied twice.
///
/// Consecutive source transactions, and snapshot rows, share one SQLite transaction (group
/// commit), committed by `flush()` or once `batchRows` rows are pending, and always at a source
/// transaction boundary. A transaction that does not end within one delivery first commits
/// what is pending and then stays open across deliveries (SQLite spills it to disk; memory stays
/// bounded); so `flush()` can always commit everything complete. Other readers of the file see
/// changes once they are committed (at the latest by `flush()`). The file is in WAL mode with
/// `synchronous=FULL`: a committed SQLite transaction survives a crash or power loss.
///
/// If `write` throws, the open SQLite transaction is rolled back and the destination is back at
/// its durable position (as after a crash): the pipeline must deliver again from there.
public actor SQLiteDestination: Destination {
    /// The default replica file, in the working directory.
    public static let defaultPath = "./ferry-replica.db"

    public nonisolated let name: String
    public nonisolated let path: String
    public nonisolated let pipeline: String
    /// Rows after which pending work is committed at the next transaction boundary.
    public nonisolated let batchRows: Int

    private let logger: Logger
    private var connection: SQLiteConnection?

    /// Tables by the identity of the schema objects that describe them.
    private var tables: [ObjectIdentifier: SQLiteTable] = [:]
    /// The current table for each `schema.table`.
    private var tablesByName: [String: SQLiteTable] = [:]

    /// The source transaction being applied (or skipped), between its begin and its commit.
    private var transaction: TransactionInfo?
    private var skipping = false
    /// True while the SAVEPOINT of the current transaction is open.
    private var savepointOpen = false
    /// Rows written in the open SQLite transaction.
    private var pendingRows = 0
    /// The `endLSN` of the last transaction applied (committed to SQLite or pending in its transaction).
    private var appliedPosition: LSN?
    /// The `endLSN` of the last transaction committed to SQLite.
    private var durablePosition: LSN?
    private var scratch: [UInt8] = []

    /// - Parameters:
    ///   - path: the SQLite file (created if needed).
    ///   - pipeline: the pipeline's name, the key of its position in `_ferry_position`.
    ///   - name: the destination's name within the pipeline (default `sqlite:PATH`).
    ///   - batchRows: rows after which pending work is committed without waiting for `flush()`.
    public init(path: String = SQLiteDestination.defaultPath, pipeline: String, name: String? = nil,
                batchRows: Int = 10_000, logger: Logger = Logger(label: "ferry.sqlite")) {
        self.path = path
        self.pipeline = pipeline
        self.name = name ?? "sqlite:\(path)"
        self.batchRows = max(1, batchRows)
        var logger = logger
        logger[metadataKey: "destination"] = "\(self.name)"
        self.logger = logger
    }

    // MARK: Destination

    public func open() throws -> DestinationResume {
        if connection != nil { return DestinationResume(durablePosition: durablePosition) }
        let db = try SQLiteConnection(path: path)
        try db.execute("PRAGMA journal_mode=WAL")
        try db.execute("PRAGMA synchronous=FULL")
        try db.execute("PRAGMA cache_size=-32768") // 32 MiB of page cache; larger transactions spill to the WAL
        try db.execute("CREATE TABLE IF NOT EXISTS _ferry_position(pipeline TEXT PRIMARY KEY, lsn TEXT NOT NULL)")
        let stored = try db.query("SELECT lsn FROM _ferry_position WHERE pipeline = ?", [.text(pipeline)]).first?.first?.text
        if let stored {
            guard let lsn = LSN(stored) else {
                throw SQLiteError(code: sqliteGenericError, message: "\(path): _ferry_position holds an invalid LSN \(stored) for pipeline \(pipeline)")
            }
            durablePosition = lsn
            appliedPosition = lsn
        }
        connection = db
        logger.info("replica opened", metadata: ["path": "\(path)", "position": "\(durablePosition?.description ?? "none")"])
        return DestinationResume(durablePosition: durablePosition)
    }

    public func write(_ events: [PipelineEvent]) throws {
        let db = try openConnection()
        do {
            for index in events.indices {
                try apply(events, at: index, db)
            }
        } catch {
            rollBack(db, after: error)
            throw error
        }
    }

    public func flush() throws -> LSN? {
        guard let db = connection else { return durablePosition }
        if transaction == nil && db.isInTransaction {
            do {
                try commitPending(db)
            } catch {
                rollBack(db, after: error)
                throw error
            }
        }
        return durablePosition
    }

    public func close() throws {
        guard let db = connection else { return }
        if db.isInTransaction {
            if transaction == nil {
                try commitPending(db)
            } else {
                // Only an incomplete transaction is pending (see `begin`): it is not kept.
                _ = try? db.run("ROLLBACK")
                logger.info("incomplete transaction discarded at close", metadata: ["xid": "\(transaction!.xid)"])
            }
        }
        tables.removeAll()
        tablesByName.removeAll()
        transaction = nil
        savepointOpen = false
        skipping = false
        db.close()
        connection = nil
    }

    // MARK: Events

    private func apply(_ events: [PipelineEvent], at index: Int, _ db: SQLiteConnection) throws {
        switch events[index] {
        case .begin(let info):
            try begin(info, db, commitFollows: events[(index + 1)...].contains { if case .commit = $0 { true } else { false } })
        case .change(let change, _):
            if skipping { return }
            try beginBatch(db)
            try apply(change, db)
            try rowWritten(db)
        case .commit(let info, let endLSN):
            try commit(info, endLSN: endLSN, db)
        case .snapshotRow(let schema, let row):
            try beginBatch(db)
            let table = try table(for: schema, db)
            try upsert(row, into: table, db)
            try rowWritten(db)
        case .snapshotTableStarted(let schema):
            try beginBatch(db)
            _ = try table(for: schema, db)
        case .snapshotTableFinished:
            break
        case .snapshotCopyRows(let schema, _):
            throw FerryError.unrequestedCopyRows(name, table: schema)
        case .streamStart, .subtransaction, .streamStop, .streamCommit, .streamAbort:
            throw FerryError.unrequestedStreamedTransaction(name)
        case .schemaChange(let change):
            if skipping { return }
            try beginBatch(db)
            try apply(change, db)
        case .message:
            break
        }
    }

    private func begin(_ info: TransactionInfo, _ db: SQLiteConnection, commitFollows: Bool) throws {
        if let open = transaction {
            // The transaction starts again before its commit (the source reconnected): what we
            // have of it is incomplete and is dropped.
            logger.warning("transaction delivered again before its commit; discarding its partial changes",
                           metadata: ["xid": "\(open.xid)"])
            if savepointOpen {
                try db.run("ROLLBACK TO ferry_transaction")
                try db.run("RELEASE ferry_transaction")
                savepointOpen = false
                forgetTables() // its DDL may have been rolled back too
            }
            transaction = nil
            skipping = false
        }
        transaction = info
        if let applied = appliedPosition, info.commitLSN < applied {
            skipping = true
            logger.debug("transaction already applied; skipped", metadata: ["xid": "\(info.xid)", "commit": "\(info.commitLSN)"])
            return
        }
        // A transaction that will not end in this delivery is kept in a SQLite transaction of
        // its own, so that flush() can commit everything complete before it.
        if !commitFollows && db.isInTransaction { try commitPending(db) }
        try beginBatch(db)
        try db.run("SAVEPOINT ferry_transaction")
        savepointOpen = true
    }

    private func commit(_ info: TransactionInfo, endLSN: LSN, _ db: SQLiteConnection) throws {
        defer {
            transaction = nil
            skipping = false
        }
        if skipping { return }
        if transaction == nil {
            logger.warning("commit without a begin; its changes were applied outside a transaction", metadata: ["xid": "\(info.xid)"])
        }
        try beginBatch(db)
        let statement = try db.prepare("INSERT INTO _ferry_position(pipeline, lsn) VALUES (?, ?) ON CONFLICT (pipeline) DO UPDATE SET lsn = excluded.lsn")
        try statement.bind(pipeline, at: 1)
        try statement.bind(endLSN.description, at: 2)
        try statement.step()
        statement.reset()
        if savepointOpen {
            try db.run("RELEASE ferry_transaction")
            savepointOpen = false
        }
        appliedPosition = endLSN
        transaction = nil
        if pendingRows >= batchRows { try commitPending(db) }
    }

    private func beginBatch(_ db: SQLiteConnection) throws {
        if !db.isInTransaction { try db.run("BEGIN IMMEDIATE") }
    }

    /// Counts a row; outside a source transaction, commits once the batch is full.
    private func rowWritten(_ db: SQLiteConnection) throws {
        pendingRows += 1
        if transaction == nil && pendingRows >= batchRows { try commitPending(db) }
    }

    private func commitPending(_ db: SQLiteConnection) throws {
        if db.isInTransaction { try db.run("COMMIT") }
        pendingRows = 0
        durablePosition = appliedPosition
    }

    /// After a failure: everything not committed is dropped; the state is the durable one.
    private func rollBack(_ db: SQLiteConnection, after error: any Error) {
        if db.isInTransaction { _ = try? db.run("ROLLBACK") }
        logger.error("write failed; uncommitted changes rolled back", metadata: [
            "error": "\(error)", "position": "\(durablePosition?.description ?? "none")",
        ])
        pendingRows = 0
        appliedPosition = durablePosition
        transaction = nil
        skipping = false
        savepointOpen = false
        forgetTables()
    }

    private func openConnection() throws -> SQLiteConnection {
        guard let connection else {
            throw SQLiteError(code: sqliteGenericError, message: "the SQLite destination \(name) is not open")
        }
        return connection
    }

    // MARK: Tables

    private func table(for schema: TableSchema, _ db: SQLiteConnection) throws -> SQLiteTable {
        if let table = tables[ObjectIdentifier(schema)] { return table }
        if let current = tablesByName[schema.qualifiedName], current.schema.hasSameDefinition(as: schema) {
            // Another object for the same definition (the catalog's and the stream's, say).
            if current.aliases.count >= 16 {
                tables[ObjectIdentifier(current.aliases.removeFirst())] = nil
            }
            current.aliases.append(schema)
            tables[ObjectIdentifier(schema)] = current
            return current
        }
        try SQLiteTable.reconcile(schema, in: db, logger: logger)
        return register(schema)
    }

    @discardableResult
    private func register(_ schema: TableSchema) -> SQLiteTable {
        if let old = tablesByName[schema.qualifiedName] {
            for alias in old.aliases { tables[ObjectIdentifier(alias)] = nil }
        }
        let table = SQLiteTable(schema: schema)
        tables[ObjectIdentifier(schema)] = table
        tablesByName[schema.qualifiedName] = table
        return table
    }

    private func forgetTables() {
        tables.removeAll()
        tablesByName.removeAll()
    }

    private func apply(_ change: SchemaChange, _ db: SQLiteConnection) throws {
        let newName = SQLiteTable.sqliteName(of: change.new)
        var tableName = SQLiteTable.sqliteName(of: change.old)
        let exists = { (name: String) throws -> Bool in
            try !db.query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", [.text(name)]).isEmpty
        }
        var metadata: Logger.Metadata = ["table": "\(newName)"]
        for difference in change.differences {
            metadata["change"] = "\(difference)"
            switch difference {
            case .tableRenamed:
                if try exists(tableName), try !exists(newName) {
                    try db.execute("ALTER TABLE \(tableName.sqliteQuotedIdentifier) RENAME TO \(newName.sqliteQuotedIdentifier)")
                    tableName = newName
                    tablesByName[change.old.qualifiedName] = nil
                    logger.info("replica table renamed", metadata: metadata)
                } else {
                    logger.warning("replica table not renamed (the old one is missing or the new name is taken)", metadata: metadata)
                }
            case .columnRenamed(let from, let to):
                guard try exists(tableName) else { continue }
                try db.execute("ALTER TABLE \(tableName.sqliteQuotedIdentifier) RENAME COLUMN \(from.sqliteQuotedIdentifier) TO \(to.sqliteQuotedIdentifier)")
                logger.info("replica column renamed", metadata: metadata)
            case .columnDropped(let column):
                guard try exists(tableName) else { continue }
                do {
                    try db.execute("SAVEPOINT ferry_ddl")
                    try db.execute("ALTER TABLE \(tableName.sqliteQuotedIdentifier) DROP COLUMN \(column.sqliteQuotedIdentifier)")
                    try db.execute("RELEASE ferry_ddl")
                    logger.info("replica column dropped", metadata: metadata)
                } catch let error as SQLiteError {
                    try db.execute("ROLLBACK TO ferry_ddl; RELEASE ferry_ddl")
                    metadata["error"] = "\(error.message)"
                    logger.warning("replica column kept: SQLite cannot drop it; new rows leave it NULL", metadata: metadata)
                    metadata["error"] = nil
                }
            case .typeChanged:
                logger.info("column type changed; the replica table is rebuilt if its SQLite type changes", metadata: metadata)
            case .columnAdded, .keyChanged, .replicaIdentityChanged:
                break // by reconcile below
            }
        }
        try SQLiteTable.reconcile(change.new, in: db, logger: logger)
        register(change.new)
    }

    // MARK: Rows

    private func apply(_ change: Change, _ db: SQLiteConnection) throws {
        switch change {
        case .insert(let schema, let row):
            try upsert(row, into: table(for: schema, db), db)
        case .update(let schema, let old, _, let row):
            try update(table(for: schema, db), old: old, row: row, db)
        case .delete(let schema, let old, let oldIsKeyOnly):
            try delete(table(for: schema, db), old: old, oldIsKeyOnly: oldIsKeyOnly, db)
        case .truncate(let schemas, _, _):
            for schema in schemas {
                let table = try table(for: schema, db)
                try db.execute("DELETE FROM \(table.quotedName)")
            }
        }
    }

    /// Columns holding `.unchangedToast`, in order (empty in the common case).
    private static func unchangedColumns(_ row: Row) -> [Int] {
        var result: [Int] = []
        for index in row.indices {
            if case .unchangedToast = row[index] { result.append(index) }
        }
        return result
    }

    private func checkShape(_ row: Row, _ table: SQLiteTable) throws {
        guard row.count == table.schema.columns.count else {
            throw SQLiteError(code: sqliteGenericError, message: "a row of \(table.schema.qualifiedName) has \(row.count) values for \(table.schema.columns.count) columns")
        }
    }

    /// Binds the written columns of `row` (those not in `omitted`) from parameter 1; returns
    /// the next parameter index.
    private func bindWritten(_ row: Row, omitted: [Int], _ statement: SQLiteStatement) throws -> Int32 {
        var parameter: Int32 = 1
        for index in row.indices where omitted.isEmpty || !omitted.contains(index) {
            try SQLiteTypeMapping.bind(row[index], to: statement, at: parameter, scratch: &scratch)
            parameter += 1
        }
        return parameter
    }

    private func upsert(_ row: Row, into table: SQLiteTable, _ db: SQLiteConnection) throws {
        try checkShape(row, table)
        let omitted = Self.unchangedColumns(row)
        let statement = try table.statement(.init(kind: .upsert, omitted: omitted), in: db)
        _ = try bindWritten(row, omitted: omitted, statement)
        defer { statement.reset() }
        try statement.step()
    }

    private func update(_ table: SQLiteTable, old: Row?, row: Row, _ db: SQLiteConnection) throws {
        try checkShape(row, table)
        let omitted = Self.unchangedColumns(row)
        if !table.keyIndexes.isEmpty {
            guard let old else {
                // Key unchanged: update by the new key, or insert the row if it is missing.
                if table.keyIndexes.contains(where: { omitted.contains($0) }) {
                    logger.error("update skipped: its key was not sent (unchanged TOAST)", metadata: ["table": "\(table.schema.qualifiedName)"])
                    return
                }
                try upsert(row, into: table, db)
                return
            }
            try checkShape(old, table)
            let statement = try table.statement(.init(kind: .updateByKey, omitted: omitted), in: db)
            var parameter = try bindWritten(row, omitted: omitted, statement)
            for index in table.keyIndexes {
                try SQLiteTypeMapping.bind(old[index], to: statement, at: parameter, scratch: &scratch)
                parameter += 1
            }
            try statement.step()
            statement.reset()
            if db.changes == 0 { try insertMissing(row, table, db) }
        } else if table.locatesByAllColumns, let old {
            try checkShape(old, table)
            let unmatched = Self.unchangedColumns(old)
            guard unmatched.count < old.count else { return try insertMissing(row, table, db) }
            let statement = try table.statement(.init(kind: .updateByMatch, omitted: omitted, unmatched: unmatched), in: db)
            var parameter = try bindWritten(row, omitted: omitted, statement)
            for index in old.indices where !unmatched.contains(index) {
                try SQLiteTypeMapping.bind(old[index], to: statement, at: parameter, scratch: &scratch)
                parameter += 1
            }
            try statement.step()
            statement.reset()
            if db.changes == 0 { try insertMissing(row, table, db) }
        } else {
            warnNoKey(table, "update")
        }
    }

    private func insertMissing(_ row: Row, _ table: SQLiteTable, _ db: SQLiteConnection) throws {
        logger.warning("updated row missing from the replica; inserted", metadata: ["table": "\(table.schema.qualifiedName)"])
        try upsert(row, into: table, db)
    }

    private func delete(_ table: SQLiteTable, old: Row, oldIsKeyOnly: Bool, _ db: SQLiteConnection) throws {
        try checkShape(old, table)
        if !table.keyIndexes.isEmpty {
            let statement = try table.statement(.init(kind: .deleteByKey), in: db)
            var parameter: Int32 = 1
            for index in table.keyIndexes {
                try SQLiteTypeMapping.bind(old[index], to: statement, at: parameter, scratch: &scratch)
                parameter += 1
            }
            defer { statement.reset() }
            try statement.step()
        } else if table.locatesByAllColumns && !oldIsKeyOnly {
            let unmatched = Self.unchangedColumns(old)
            guard unmatched.count < old.count else { return warnNoKey(table, "delete") }
            let statement = try table.statement(.init(kind: .deleteByMatch, unmatched: unmatched), in: db)
            var parameter: Int32 = 1
            for index in old.indices where !unmatched.contains(index) {
                try SQLiteTypeMapping.bind(old[index], to: statement, at: parameter, scratch: &scratch)
                parameter += 1
            }
            defer { statement.reset() }
            try statement.step()
        } else {
            warnNoKey(table, "delete")
        }
    }

    private func warnNoKey(_ table: SQLiteTable, _ kind: String) {
        guard !table.warnedNoKey else { return }
        table.warnedNoKey = true
        logger.warning("\(kind) skipped: the table has no key to locate rows (set REPLICA IDENTITY FULL or add a primary key)",
                       metadata: ["table": "\(table.schema.qualifiedName)"])
    }
}
