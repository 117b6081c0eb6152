import FerryCore
import Logging
import PostgresWire

/// The default ``StateStore``: a local SQLite file (`./ferry-state.db` unless told otherwise).
///
/// Every method runs in its own SQLite transaction in WAL mode with `synchronous=FULL`, so it
/// is durable when it returns. LSNs are stored as PostgreSQL prints them (`16/B374D848`), so
/// the file can be read with the `sqlite3` shell.
///
/// Tables (schema version 1, in `PRAGMA user_version`):
///
/// | table | columns |
/// |---|---|
/// | `pipelines` | `name` (key), `slot`, `publication`, `consistent_point`, `snapshot` |
/// | `pipeline_tables` | `pipeline`, `position`, `name`: the tables of a pipeline's snapshot, in order |
/// | `snapshot_chunks` | `pipeline`, `table_name`, `chunk`: chunks done |
/// | `destination_positions` | `pipeline`, `destination`, `lsn` |
public actor SQLiteStateStore: StateStore {
    /// The default file, in the working directory.
    public static let defaultPath = "./ferry-state.db"

    public nonisolated let path: String
    private let connection: SQLiteConnection
    private let logger: Logger

    /// Opens (creating if needed) the state file at `path`.
    public init(path: String = SQLiteStateStore.defaultPath, logger: Logger = Logger(label: "ferry.state")) throws {
        self.path = path
        self.logger = logger
        let connection = try SQLiteConnection(path: path)
        try connection.execute("PRAGMA journal_mode=WAL")
        try connection.execute("PRAGMA synchronous=FULL")
        let version = try connection.query("PRAGMA user_version").first?.first?.integer ?? 0
        guard version <= 1 else {
            throw SQLiteError(code: sqliteGenericError, message: "\(path) was written by a newer Ferry (state schema version \(version)); upgrade Ferry or use another state file")
        }
        try connection.transaction {
            try connection.execute("""
                CREATE TABLE IF NOT EXISTS pipelines(
                    name TEXT PRIMARY KEY,
                    slot TEXT NOT NULL,
                    publication TEXT NOT NULL,
                    consistent_point TEXT NOT NULL,
                    snapshot TEXT NOT NULL
                );
                CREATE TABLE IF NOT EXISTS pipeline_tables(
                    pipeline TEXT NOT NULL,
                    position INTEGER NOT NULL,
                    name TEXT NOT NULL,
                    PRIMARY KEY (pipeline, position)
                ) WITHOUT ROWID;
                CREATE TABLE IF NOT EXISTS snapshot_chunks(
                    pipeline TEXT NOT NULL,
                    table_name TEXT NOT NULL,
                    chunk INTEGER NOT NULL,
                    PRIMARY KEY (pipeline, table_name, chunk)
                ) WITHOUT ROWID;
                CREATE TABLE IF NOT EXISTS destination_positions(
                    pipeline TEXT NOT NULL,
                    destination TEXT NOT NULL,
                    lsn TEXT NOT NULL,
                    PRIMARY KEY (pipeline, destination)
                ) WITHOUT ROWID;
                PRAGMA user_version = 1;
                """)
        }
        self.connection = connection
    }

    public func pipeline(named name: String) throws -> PipelineRecord? {
        guard let row = try connection.query(
            "SELECT slot, publication, consistent_point, snapshot FROM pipelines WHERE name = ?", [.text(name)]).first
        else { return nil }
        let pointText = row[2].text ?? ""
        guard let point = LSN(pointText) else {
            throw SQLiteError(code: sqliteGenericError, message: "\(path): pipeline \(name) has an invalid consistent point \(pointText)")
        }
        let phaseText = row[3].text ?? ""
        guard let phase = PipelineRecord.SnapshotPhase(rawValue: phaseText) else {
            throw SQLiteError(code: sqliteGenericError, message: "\(path): pipeline \(name) has an unknown snapshot phase \(phaseText)")
        }
        let tables = try connection.query(
            "SELECT name FROM pipeline_tables WHERE pipeline = ? ORDER BY position", [.text(name)]).compactMap { $0[0].text }
        return PipelineRecord(name: name, slot: row[0].text ?? "", publication: row[1].text ?? "",
                              consistentPoint: point, snapshot: phase, tables: tables)
    }

    public func savePipeline(_ record: PipelineRecord) throws {
        try connection.transaction {
            try connection.run("""
                INSERT INTO pipelines(name, slot, publication, consistent_point, snapshot) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT(name) DO UPDATE SET slot = excluded.slot, publication = excluded.publication,
                    consistent_point = excluded.consistent_point, snapshot = excluded.snapshot
                """, [.text(record.name), .text(record.slot), .text(record.publication),
                      .text(record.consistentPoint.description), .text(record.snapshot.rawValue)])
            try connection.run("DELETE FROM pipeline_tables WHERE pipeline = ?", [.text(record.name)])
            for (position, table) in record.tables.enumerated() {
                try connection.run("INSERT INTO pipeline_tables(pipeline, position, name) VALUES (?, ?, ?)",
                                   [.text(record.name), .integer(Int64(position)), .text(table)])
            }
        }
    }

    public func markChunkDone(pipeline: String, table: String, chunk: Int) throws {
        try connection.run("INSERT OR IGNORE INTO snapshot_chunks(pipeline, table_name, chunk) VALUES (?, ?, ?)",
                           [.text(pipeline), .text(table), .integer(Int64(chunk))])
    }

    public func doneChunks(pipeline: String, table: String) throws -> Set<Int> {
        let rows = try connection.query("SELECT chunk FROM snapshot_chunks WHERE pipeline = ? AND table_name = ?",
                                        [.text(pipeline), .text(table)])
        return Set(rows.compactMap { $0[0].integer.map(Int.init) })
    }

    public func saveDestinationPosition(pipeline: String, destination: String, position: LSN) throws {
        try connection.run("""
            INSERT INTO destination_positions(pipeline, destination, lsn) VALUES (?, ?, ?)
            ON CONFLICT(pipeline, destination) DO UPDATE SET lsn = excluded.lsn
            """, [.text(pipeline), .text(destination), .text(position.description)])
    }

    public func destinationPosition(pipeline: String, destination: String) throws -> LSN? {
        let rows = try connection.query("SELECT lsn FROM destination_positions WHERE pipeline = ? AND destination = ?",
                                        [.text(pipeline), .text(destination)])
        guard let text = rows.first?.first?.text else { return nil }
        guard let lsn = LSN(text) else {
            throw SQLiteError(code: sqliteGenericError, message: "\(path): destination \(destination) of pipeline \(pipeline) has an invalid position \(text)")
        }
        return lsn
    }

    /// Every destination's durable position recorded for `pipeline`, by destination name.
    public func destinationPositions(pipeline: String) throws -> [(destination: String, position: String)] {
        let rows = try connection.query("SELECT destination, lsn FROM destination_positions WHERE pipeline = ? ORDER BY destination",
                                        [.text(pipeline)])
        return rows.compactMap { row in
            guard let destination = row[0].text, let lsn = row[1].text else { return nil }
            return (destination, lsn)
        }
    }

    public func reset(pipeline: String) throws {
        try connection.transaction {
            for table in ["pipelines", "pipeline_tables", "snapshot_chunks", "destination_positions"] {
                let column = table == "pipelines" ? "name" : "pipeline"
                try connection.run("DELETE FROM \(table) WHERE \(column) = ?", [.text(pipeline)])
            }
        }
        logger.info("state of pipeline forgotten", metadata: ["pipeline": "\(pipeline)"])
    }
}

/// `SQLITE_ERROR`, for errors Ferry raises about a file's contents.
let sqliteGenericError: Int32 = 1
