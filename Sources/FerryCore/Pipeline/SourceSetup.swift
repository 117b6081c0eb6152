import Logging
import PostgresReplication
import PostgresWire

/// Publication and slot checks on the source, with errors that say what to do.
enum SourceSetup {
    struct SlotState {
        var plugin: String?
        var database: String?
        var active: Bool
        var confirmedFlush: LSN?
        var walStatus: String?
    }

    /// Uses the named publication if it exists; otherwise creates it for the configured tables.
    /// Never drops or alters a user's publication. Returns its name.
    ///
    /// An existing publication must publish every table named in the configuration (schema
    /// wildcards aside): a table dropped and created again leaves the publications it was in,
    /// and its changes would silently not reach the pipeline.
    static func ensurePublication(_ configuration: PipelineConfiguration, on connection: PGConnection, logger: Logger) async throws -> String {
        let name = configuration.publicationName
        let exists = try await connection.query("SELECT pubname FROM pg_publication WHERE pubname = \(literal(name))")
        if !exists.isEmpty {
            let named = configuration.tables.map { $0.split(separator: ".", maxSplits: 1).map(String.init) }.filter { $0.count == 2 && $0[1] != "*" }
            guard !named.isEmpty else { return name }
            let published = Set(try await connection.query("SELECT schemaname || '.' || tablename FROM pg_publication_tables WHERE pubname = \(literal(name))")
                .compactMap { $0.first ?? nil })
            let missing = named.map { $0.joined(separator: ".") }.filter { !published.contains($0) }
            guard missing.isEmpty else {
                let list = missing.map { pattern -> String in
                    let parts = pattern.split(separator: ".", maxSplits: 1).map(String.init)
                    return identifier(parts[0]) + "." + identifier(parts[1])
                }.joined(separator: ", ")
                throw FerryError(.source, "publication \"\(name)\" does not publish \(missing.joined(separator: ", ")), which the pipeline is configured to replicate: its changes would never arrive (a table dropped and created again leaves its publications)",
                                 fix: "ALTER PUBLICATION \(identifier(name)) ADD TABLE \(list); (or leave the table out of --tables)")
            }
            return name
        }
        guard !configuration.tables.isEmpty else {
            throw FerryError(.source, "publication \"\(name)\" does not exist",
                             fix: "create it (CREATE PUBLICATION \(name) FOR TABLE …) or name the tables with --tables so Ferry creates it")
        }
        var tables: [String] = []
        var schemas: [String] = []
        for pattern in configuration.tables {
            let parts = pattern.split(separator: ".", maxSplits: 1).map(String.init)
            if parts[1] == "*" {
                schemas.append(parts[0])
            } else {
                let found = try await connection.query("""
                    SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                    WHERE n.nspname = \(literal(parts[0])) AND c.relname = \(literal(parts[1])) AND c.relkind IN ('r', 'p')
                    """)
                guard !found.isEmpty else {
                    throw FerryError(.source, "table \(pattern) does not exist on the source",
                                     fix: "check the name (schema.table, case-sensitive) or create the table")
                }
                tables.append(identifier(parts[0]) + "." + identifier(parts[1]))
            }
        }
        if !schemas.isEmpty {
            // FOR TABLES IN SCHEMA needs PostgreSQL 15; expand the schema on older servers.
            if connection.serverVersionNumber >= 150_000 {
                let list = (tables.isEmpty ? "" : "TABLE " + tables.joined(separator: ", ") + ", ")
                    + "TABLES IN SCHEMA " + schemas.map(identifier).joined(separator: ", ")
                try await connection.simpleQuery("CREATE PUBLICATION \(identifier(name)) FOR \(list)")
                logger.info("created publication", metadata: ["publication": "\(name)"])
                return name
            }
            for schema in schemas {
                let rows = try await connection.query("""
                    SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                    WHERE n.nspname = \(literal(schema)) AND c.relkind IN ('r', 'p') ORDER BY 1
                    """)
                tables += rows.compactMap { $0.first ?? nil }.map { identifier(schema) + "." + identifier($0) }
            }
        }
        guard !tables.isEmpty else {
            throw FerryError(.source, "no tables match \(configuration.tables.joined(separator: ", "))",
                             fix: "create the tables first, or name existing ones")
        }
        try await connection.simpleQuery("CREATE PUBLICATION \(identifier(name)) FOR TABLE \(tables.joined(separator: ", "))")
        logger.info("created publication", metadata: ["publication": "\(name)", "tables": "\(tables.count)"])
        return name
    }

    static func slotState(_ slot: String, on connection: PGConnection) async throws -> SlotState? {
        let rows = try await connection.query("""
            SELECT plugin, database, active::text, confirmed_flush_lsn::text, wal_status
            FROM pg_replication_slots WHERE slot_name = \(literal(slot))
            """)
        guard let row = rows.first, row.count == 5 else { return nil }
        return SlotState(plugin: row[0], database: row[1], active: row[2] == "true",
                         confirmedFlush: row[3].flatMap { LSN($0) }, walStatus: row[4])
    }

    static func literal(_ value: String) -> String { SQLQuoting.literal(value) }
    static func identifier(_ value: String) -> String { SQLQuoting.identifier(value) }
}
