import FerryCore
import Logging
import NIOCore
import PostgresReplication
import PostgresWire

/// Loads undecoded snapshot rows (``BinaryCopyRows``) into target tables with
/// `COPY … FROM STDIN (FORMAT binary)`, on a connection of its own.
///
/// postgres-nio writes COPY only in text format, so this uses Ferry's own wire client. The
/// connection runs each COPY as its own transaction: snapshot rows are at-least-once (the
/// coordinator records a chunk only after `flush()`), and each `load` has committed when it
/// returns. A key already on the target (a chunk read again after a restart) makes the COPY
/// fail as a whole; the batch then goes through a temporary table and
/// `INSERT … ON CONFLICT (key) DO UPDATE`, so it overwrites instead.
///
/// Used by one task at a time (the destination actor awaits each call; calls never overlap).
final class BinaryCopyLoader: @unchecked Sendable {
    /// CopyData messages of at most this size.
    static let messageBytes = 1 << 20

    let configuration: ConnectionConfiguration
    let destination: String
    let logger: Logger
    private var connection: PGConnection?

    init(configuration: ConnectionConfiguration, destination: String, logger: Logger) {
        self.configuration = configuration
        self.destination = destination
        self.logger = logger
    }

    /// What a load statement needs to know of the target table.
    struct Statement {
        /// `"schema"."table"`.
        var quotedTable: String
        /// The target's column names, quoted, in the order of the tuples' fields.
        var quotedColumns: [String]
        /// The target's key columns, quoted (empty: no key, the COPY cannot meet a duplicate).
        var quotedKey: [String]
    }

    /// Loads `rows` into the table; returns whether they went in with a plain COPY (false: some
    /// keys were there already and the batch was upserted).
    @discardableResult
    func load(_ rows: BinaryCopyRows, into statement: Statement) async throws -> Bool {
        let connection = try await open()
        let columns = statement.quotedColumns.joined(separator: ", ")
        do {
            try await copy(rows, sql: "COPY \(statement.quotedTable) (\(columns)) FROM STDIN (FORMAT binary)", on: connection)
            return true
        } catch let error as PGConnectionError where error.sqlState == "23505" && !statement.quotedKey.isEmpty {
            logger.debug("snapshot rows already on the target; upserting the batch",
                         metadata: ["table": "\(statement.quotedTable)", "destination": "\(destination)"])
        } catch {
            throw classify(error, table: statement.quotedTable)
        }
        let keys = Set(statement.quotedKey)
        let updates = statement.quotedColumns.filter { !keys.contains($0) }.map { "\($0) = EXCLUDED.\($0)" }
        do {
            try await connection.simpleQuery("""
                BEGIN; CREATE TEMPORARY TABLE ferry_load (LIKE \(statement.quotedTable)) ON COMMIT DROP
                """)
            try await copy(rows, sql: "COPY ferry_load (\(columns)) FROM STDIN (FORMAT binary)", on: connection)
            try await connection.simpleQuery("""
                INSERT INTO \(statement.quotedTable) (\(columns)) SELECT \(columns) FROM ferry_load
                ON CONFLICT (\(statement.quotedKey.joined(separator: ", "))) \(updates.isEmpty ? "DO NOTHING" : "DO UPDATE SET " + updates.joined(separator: ", "));
                COMMIT
                """)
            return false
        } catch {
            if !connection.isBroken { _ = try? await connection.simpleQuery("ROLLBACK") }
            throw classify(error, table: statement.quotedTable)
        }
    }

    func close() async {
        if let connection { await connection.close() }
        connection = nil
    }

    private func open() async throws -> PGConnection {
        if let connection, connection.isOpen { return connection }
        await close()
        do {
            let connection = try await PGConnection.connect(configuration, replication: .some(nil), logger: logger)
            self.connection = connection
            return connection
        } catch {
            throw FerryError(.destination, "cannot open a loading connection to the Postgres destination \(destination): \(Redaction.redact(String(describing: error)))",
                             fix: "check that the server accepts one more connection from this user (max_connections)")
        }
    }

    private func copy(_ rows: BinaryCopyRows, sql: String, on connection: PGConnection) async throws {
        try await connection.copyIn(sql) { send in
            var tuples = rows.tuples
            var first = ByteBuffer(bytes: BinaryCopyParser.header)
            var piece = tuples.readSlice(length: min(tuples.readableBytes, Self.messageBytes - first.readableBytes))!
            first.writeBuffer(&piece)
            try await send(first)
            while tuples.readableBytes > 0 {
                try await send(tuples.readSlice(length: min(tuples.readableBytes, Self.messageBytes))!)
            }
            try await send(ByteBuffer(bytes: BinaryCopyParser.trailer))
        }
    }

    /// A lost connection is retryable (the pipeline reconnects and the chunk is read again);
    /// anything the server refused is not.
    private func classify(_ error: any Error, table: String) -> any Error {
        if error is FerryError { return error }
        if let error = error as? PGConnectionError, error.serverError == nil {
            connection = nil
            return FerryError(.destination, "the loading connection to the Postgres destination \(destination) failed: \(error.message)",
                              fix: error.fix ?? "check that the target server is running")
        }
        return FerryError(.destinationRejected, "the Postgres destination \(destination) refused snapshot rows of \(table): \(Redaction.redact(String(describing: error)))",
                          fix: "compare the table's definition on the target with the source's")
    }
}
