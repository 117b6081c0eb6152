import PostgresReplication
import PostgresWire

/// Which tables to snapshot: one table, every table of a schema, or every table of a publication.
public enum TableSelector: Sendable, Hashable, CustomStringConvertible {
    /// One table (`schema.table`).
    case table(schema: String, name: String)
    /// Every ordinary and partitioned table of a schema (`schema.*`); partitions are reached
    /// through their root.
    case schema(String)
    /// Every table of a publication, as `pg_publication_tables` lists them (roots under
    /// `publish_via_partition_root`, leaves otherwise), with its column list and row filter
    /// (PostgreSQL 15+).
    case publication(String)

    /// Parses `schema.table`, `table` (in `public`), `schema.*` and their quoted forms
    /// (`"Sales"."Order Items"`). Unquoted names are folded to lower case, as PostgreSQL does.
    public init(parsing text: String) throws {
        let parts = try Self.splitQualifiedName(text)
        switch parts.count {
        case 1:
            guard !(parts[0].name == "*" && !parts[0].quoted) else {
                throw Self.invalid(text, "`*` needs a schema (`public.*`)")
            }
            self = .table(schema: "public", name: parts[0].name)
        case 2:
            if parts[1].name == "*" && !parts[1].quoted {
                self = .schema(parts[0].name)
            } else {
                self = .table(schema: parts[0].name, name: parts[1].name)
            }
        default:
            throw Self.invalid(text, "expected schema.table, table or schema.* (a database name cannot be given here)")
        }
    }

    public var description: String {
        switch self {
        case .table(let schema, let name): "\(SnapshotSQL.display(schema)).\(SnapshotSQL.display(name))"
        case .schema(let schema): "\(SnapshotSQL.display(schema)).*"
        case .publication(let name): "publication \(name)"
        }
    }

    private static func invalid(_ text: String, _ reason: String) -> SnapshotError {
        SnapshotError(.invalidTableName, "\"\(text)\" is not a table name: \(reason)",
                      fix: "write tables as schema.table (or schema.* for every table of a schema); quote mixed-case names: \"Sales\".\"Orders\"")
    }

    private static func splitQualifiedName(_ text: String) throws -> [(name: String, quoted: Bool)] {
        var parts: [(name: String, quoted: Bool)] = []
        let characters = Array(SnapshotSQL.trimmed(text))
        guard !characters.isEmpty else { throw invalid(text, "it is empty") }
        var index = 0
        while true {
            var name = ""
            var quoted = false
            if index < characters.count, characters[index] == "\"" {
                quoted = true
                index += 1
                var closed = false
                while index < characters.count {
                    if characters[index] == "\"" {
                        if index + 1 < characters.count, characters[index + 1] == "\"" {
                            name.append("\"")
                            index += 2
                            continue
                        }
                        index += 1
                        closed = true
                        break
                    }
                    name.append(characters[index])
                    index += 1
                }
                guard closed else { throw invalid(text, "a quote is not closed") }
            } else {
                while index < characters.count, characters[index] != "." {
                    guard characters[index] != "\"" else { throw invalid(text, "a quote starts in the middle of a name") }
                    name.append(characters[index])
                    index += 1
                }
                name = SnapshotSQL.trimmed(name)
                // PostgreSQL folds unquoted identifiers to lower case (ASCII letters only).
                name = String(String.UnicodeScalarView(name.unicodeScalars.map {
                    ("A"..."Z").contains($0) ? Unicode.Scalar($0.value + 32)! : $0
                }))
            }
            guard !name.isEmpty else { throw invalid(text, "a part of the name is empty") }
            parts.append((name, quoted))
            guard index < characters.count else { break }
            guard characters[index] == "." else { throw invalid(text, "unexpected text after a quoted name") }
            index += 1
            guard index < characters.count else { throw invalid(text, "it ends with a dot") }
        }
        return parts
    }
}

/// A table as the snapshot reads it: its schema (the same relation id, columns and key flags
/// pgoutput's Relation message gives, so snapshot rows and streamed changes meet in one
/// schema) and its size, for chunk planning and progress.
public struct SnapshotTable: Sendable {
    public enum Kind: Sendable, Hashable {
        /// An ordinary table: read in CTID page ranges, in parallel.
        case table
        /// A partitioned table: read as one chunk through the root (its partitions' pages do
        /// not share one CTID space).
        case partitioned
    }

    public let schema: TableSchema
    public var kind: Kind
    /// The main fork's size in pages now (`pg_relation_size / block_size`), which, unlike
    /// `relpages`, is right for tables never vacuumed or analyzed.
    public var pages: Int
    /// `pg_class.relpages`: the page count as of the last VACUUM or ANALYZE.
    public var relpages: Int
    /// `pg_class.reltuples`, nil when the table was never vacuumed or analyzed.
    public var estimatedRows: Int?
    /// The server's `block_size` (8192 unless compiled otherwise).
    public var blockSize: Int
    /// The publication's row filter (PostgreSQL 15+), applied to the snapshot as pgoutput applies
    /// it to the stream. Nil when none.
    public var rowFilter: String?

    public init(schema: TableSchema, kind: Kind = .table, pages: Int, relpages: Int? = nil, estimatedRows: Int? = nil,
                blockSize: Int = 8192, rowFilter: String? = nil) {
        self.schema = schema
        self.kind = kind
        self.pages = pages
        self.relpages = relpages ?? pages
        self.estimatedRows = estimatedRows
        self.blockSize = blockSize
        self.rowFilter = rowFilter
    }

    /// Rows expected, from `reltuples` scaled to the current size; nil when unknown.
    public var expectedRows: Int? {
        guard let estimatedRows else { return nil }
        guard relpages > 0, pages > relpages else { return estimatedRows }
        return Int((Double(estimatedRows) / Double(relpages) * Double(pages)).rounded())
    }
}

/// Reads table definitions from the source's catalog, the way pgoutput describes them.
///
/// Columns come from `pg_attribute` in `attnum` order without dropped and generated columns
/// (pgoutput sends neither); a column is a key column when it is part of the replica identity
/// (the primary key under `DEFAULT`, the identity index under `USING INDEX`, every column
/// under `FULL`, none under `NOTHING`), as the Relation message flags it. Run it inside the
/// snapshot's transaction to see the definitions as of the snapshot.
///
/// Not `Sendable`: it borrows a connection, which serves one task at a time.
public struct SourceCatalog {
    public let connection: PGConnection

    public init(_ connection: PGConnection) {
        self.connection = connection
    }

    /// The tables the selectors name, in selection order (each table once).
    ///
    /// - Throws: ``SnapshotError`` (`tableNotFound`, `notATable`, `publicationNotFound`) naming
    ///   the table and how to fix it; `PGConnectionError` for connection failures.
    public func tables(_ selectors: [TableSelector]) async throws -> [SnapshotTable] {
        var order: [UInt32] = []
        var seen = Set<UInt32>()
        var columnLists: [UInt32: Set<String>] = [:]
        var rowFilters: [UInt32: String] = [:]
        func add(_ oid: UInt32) {
            if seen.insert(oid).inserted { order.append(oid) }
        }

        let named: [(schema: String, name: String)] = selectors.compactMap {
            if case .table(let schema, let name) = $0 { (schema, name) } else { nil }
        }
        let namedOIDs = try await resolve(named)
        var namedIndex = 0
        for selector in selectors {
            switch selector {
            case .table:
                add(namedOIDs[namedIndex])
                namedIndex += 1
            case .schema(let schema):
                for oid in try await schemaTables(schema) { add(oid) }
            case .publication(let publication):
                for entry in try await publicationTables(publication) {
                    add(entry.oid)
                    if let columns = entry.columns { columnLists[entry.oid] = columns }
                    if let filter = entry.rowFilter { rowFilters[entry.oid] = filter }
                }
            }
        }
        guard !order.isEmpty else { return [] }
        var tables = try await describe(order)
        for index in tables.indices {
            let oid = tables[index].schema.relationID
            tables[index].rowFilter = rowFilters[oid]
            if let list = columnLists[oid] {
                let schema = tables[index].schema
                tables[index] = SnapshotTable(
                    schema: TableSchema(relationID: schema.relationID, schema: schema.schema, name: schema.name,
                                        columns: schema.columns.filter { list.contains($0.name) },
                                        replicaIdentity: schema.replicaIdentity),
                    kind: tables[index].kind, pages: tables[index].pages, relpages: tables[index].relpages,
                    estimatedRows: tables[index].estimatedRows, blockSize: tables[index].blockSize,
                    rowFilter: rowFilters[oid])
            }
        }
        return tables
    }

    /// The source's non-built-in types, for ``ValueDecoder``.
    public func typeRegistry() async throws -> TypeRegistry {
        let rows = try await connection.query(TypeRegistry.query(serverVersionNumber: connection.serverVersionNumber))
        return try TypeRegistry(rows: rows)
    }

    // MARK: Resolving names

    private var databaseName: String { connection.configuration.database }

    /// The OIDs of named tables, in order; throws for the first one missing or not a table.
    private func resolve(_ names: [(schema: String, name: String)]) async throws -> [UInt32] {
        guard !names.isEmpty else { return [] }
        let values = names.enumerated().map { "(\($0.offset), \(SnapshotSQL.literal($0.element.schema)), \(SnapshotSQL.literal($0.element.name)))" }
            .joined(separator: ", ")
        let rows = try await connection.query("""
            SELECT w.ord, c.oid, c.relkind
            FROM (VALUES \(values)) AS w(ord, nsp, rel)
            LEFT JOIN pg_catalog.pg_namespace n ON n.nspname = w.nsp
            LEFT JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = w.rel
            ORDER BY w.ord
            """)
        var oids: [UInt32] = []
        for (index, wanted) in names.enumerated() {
            let row = index < rows.count ? rows[index] : []
            guard row.count >= 3, let oid = row[1].flatMap({ UInt32($0) }) else {
                throw try await missingTable(schema: wanted.schema, name: wanted.name)
            }
            let kind = row[2] ?? ""
            guard kind == "r" || kind == "p" else {
                let what = ["v": "a view", "m": "a materialized view", "S": "a sequence", "i": "an index",
                            "I": "a partitioned index", "f": "a foreign table", "c": "a composite type",
                            "t": "a TOAST table"][kind] ?? "not a table (relkind \(kind))"
                throw SnapshotError(.notATable, "\(SnapshotSQL.display(wanted.schema, wanted.name)) is \(what); only tables can be replicated",
                    fix: "list the tables it reads from instead (logical replication publishes ordinary and partitioned tables only)")
            }
            oids.append(oid)
        }
        return oids
    }

    private func missingTable(schema: String, name: String) async throws -> SnapshotError {
        // Offer tables of the same name in other schemas or in other letter case.
        let candidates = try await connection.query("""
            SELECT n.nspname, c.relname FROM pg_catalog.pg_class c
            JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
            WHERE lower(c.relname) = lower(\(SnapshotSQL.literal(name))) AND c.relkind IN ('r', 'p')
              AND n.nspname NOT IN ('pg_catalog', 'information_schema')
            ORDER BY 1, 2 LIMIT 5
            """).compactMap { row -> String? in
                guard row.count == 2, let schema = row[0], let name = row[1] else { return nil }
                return SnapshotSQL.display(schema, name)
            }
        let schemaExists = try await !connection.query(
            "SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = \(SnapshotSQL.literal(schema))").isEmpty
        var message = "table \(SnapshotSQL.display(schema, name)) does not exist in database \"\(databaseName)\""
        if !schemaExists { message += " (there is no schema \(SnapshotSQL.display(schema)))" }
        var fix = candidates.isEmpty
            ? "check the name (schema.table; the schema defaults to public) and the database in the source URL; psql's \\dt *.* lists the tables"
            : "did you mean \(candidates.joined(separator: " or "))? Names are schema.table; quote mixed-case names (\"Sales\".\"Orders\")"
        fix += ", or create the table first"
        return SnapshotError(.tableNotFound, message, fix: fix)
    }

    private func schemaTables(_ schema: String) async throws -> [UInt32] {
        let exists = try await !connection.query(
            "SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = \(SnapshotSQL.literal(schema))").isEmpty
        guard exists else {
            throw SnapshotError(.tableNotFound, "schema \(SnapshotSQL.display(schema)) does not exist in database \"\(databaseName)\"",
                fix: "check the schema name (psql's \\dn lists schemas); quote mixed-case names (\"Sales\".*)")
        }
        return try await connection.query("""
            SELECT c.oid FROM pg_catalog.pg_class c
            JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = \(SnapshotSQL.literal(schema)) AND c.relkind IN ('r', 'p') AND NOT c.relispartition
            ORDER BY c.relname
            """).compactMap { $0.first.flatMap { $0 }.flatMap { UInt32($0) } }
    }

    private func publicationTables(_ publication: String) async throws
        -> [(oid: UInt32, columns: Set<String>?, rowFilter: String?)]
    {
        let exists = try await !connection.query(
            "SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = \(SnapshotSQL.literal(publication))").isEmpty
        guard exists else {
            throw SnapshotError(.publicationNotFound, "publication \"\(publication)\" does not exist in database \"\(databaseName)\"",
                fix: "create it (CREATE PUBLICATION \(SnapshotSQL.display(publication)) FOR TABLE …) or fix its name; psql's \\dRp lists publications")
        }
        let modern = connection.serverVersionNumber >= 150_000
        let extra = modern ? ", pt.attnames, pt.rowfilter" : ", NULL, NULL"
        let rows = try await connection.query("""
            SELECT c.oid\(extra)
            FROM pg_catalog.pg_publication_tables pt
            JOIN pg_catalog.pg_namespace n ON n.nspname = pt.schemaname
            JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = pt.tablename
            WHERE pt.pubname = \(SnapshotSQL.literal(publication))
            ORDER BY pt.schemaname, pt.tablename
            """)
        return rows.compactMap { row in
            guard row.count == 3, let oid = row[0].flatMap({ UInt32($0) }) else { return nil }
            let columns = row[1].flatMap { SnapshotSQL.arrayElements($0) }.map(Set.init)
            return (oid, columns, row[2])
        }
    }

    // MARK: Describing tables

    private func describe(_ oids: [UInt32]) async throws -> [SnapshotTable] {
        let list = oids.map(String.init).joined(separator: ", ")
        let tableRows = try await connection.query("""
            SELECT c.oid, n.nspname, c.relname, c.relkind, c.relreplident, c.relpages, c.reltuples,
                   pg_catalog.pg_relation_size(c.oid) / current_setting('block_size')::int,
                   current_setting('block_size')
            FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
            WHERE c.oid IN (\(list))
            """)
        let columnRows = try await connection.query("""
            SELECT a.attrelid, a.attname, a.atttypid, a.atttypmod, a.attnotnull,
                   CASE WHEN tn.nspname = 'pg_catalog' THEN t.typname::text ELSE tn.nspname || '.' || t.typname END,
                   CASE c.relreplident
                       WHEN 'f' THEN true
                       WHEN 'n' THEN false
                       ELSE COALESCE((SELECT a.attnum = ANY(i.indkey) FROM pg_catalog.pg_index i
                                      WHERE i.indrelid = c.oid
                                        AND CASE c.relreplident WHEN 'i' THEN i.indisreplident ELSE i.indisprimary END
                                      LIMIT 1), false)
                   END
            FROM pg_catalog.pg_attribute a
            JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
            JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
            JOIN pg_catalog.pg_namespace tn ON tn.oid = t.typnamespace
            WHERE a.attrelid IN (\(list)) AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
            ORDER BY a.attrelid, a.attnum
            """)
        var columns: [UInt32: [TableSchema.Column]] = [:]
        for row in columnRows {
            guard row.count == 7, let relation = row[0].flatMap({ UInt32($0) }), let name = row[1],
                  let type = row[2].flatMap({ UInt32($0) }), let modifier = row[3].flatMap({ Int32($0) })
            else { throw catalogRow("pg_attribute", row) }
            columns[relation, default: []].append(TableSchema.Column(
                name: name, typeOID: type, typeModifier: modifier, isKey: row[6] == "t",
                typeName: row[5], notNull: row[4] == "t"))
        }
        var byOID: [UInt32: SnapshotTable] = [:]
        for row in tableRows {
            guard row.count == 9, let oid = row[0].flatMap({ UInt32($0) }), let schema = row[1], let name = row[2],
                  let relpages = row[5].flatMap({ Int($0) }), let reltuples = row[6].flatMap({ Double($0) }),
                  let pages = row[7].flatMap({ Int($0) }), let blockSize = row[8].flatMap({ Int($0) })
            else { throw catalogRow("pg_class", row) }
            let identity: TableSchema.ReplicaIdentity = switch row[4] ?? "d" {
            case "f": .full
            case "n": .nothing
            case "i": .index
            default: .default
            }
            let schemaObject = TableSchema(relationID: oid, schema: schema, name: name, columns: columns[oid] ?? [],
                                           replicaIdentity: identity)
            // reltuples is -1 before the first VACUUM/ANALYZE (PostgreSQL 14+); 0 with relpages 0 is
            // also "never counted" on older servers.
            let estimate: Int? = reltuples < 0 || (reltuples == 0 && relpages == 0 && pages > 0) ? nil : Int(reltuples)
            byOID[oid] = SnapshotTable(schema: schemaObject, kind: row[3] == "p" ? .partitioned : .table,
                                       pages: pages, relpages: relpages, estimatedRows: estimate, blockSize: blockSize)
        }
        return try oids.map { oid in
            guard let table = byOID[oid] else {
                throw SnapshotError(.tableNotFound, "table with OID \(oid) disappeared while its definition was read",
                                    fix: "run again; if tables are being dropped, leave them out of the pipeline")
            }
            return table
        }
    }

    private func catalogRow(_ catalog: String, _ row: [String?]) -> SnapshotError {
        SnapshotError(.tableNotFound, "unexpected \(catalog) row from the source: \(row.count) columns",
                      fix: "check that the source is PostgreSQL 14 or newer")
    }
}

// MARK: - SQL text

/// SQL text helpers of the snapshot code.
enum SnapshotSQL {
    /// A string literal (`'it''s'`), for connections with `standard_conforming_strings = on`
    /// (the default since PostgreSQL 9.1; the snapshot's connections set it).
    static func literal(_ value: String) -> String {
        SQLQuoting.literal(value)
    }

    /// A quoted identifier (`"Order Items"`).
    static func identifier(_ value: String) -> String {
        SQLQuoting.identifier(value)
    }

    /// `"schema"."name"`.
    static func qualified(_ table: TableSchema) -> String {
        "\(identifier(table.schema)).\(identifier(table.name))"
    }

    /// An identifier as a user would type it: bare when that reads back the same, quoted otherwise.
    static func display(_ value: String) -> String {
        let plain = !value.isEmpty
            && value.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "_" }
            && !("0"..."9").contains(value.unicodeScalars.first!)
        return plain ? value : identifier(value)
    }

    static func display(_ schema: String, _ name: String) -> String {
        "\(display(schema)).\(display(name))"
    }

    /// The elements of the text form of a one-dimensional array (`{a,"b c"}`).
    static func arrayElements(_ text: String) -> [String]? {
        let scalars = Array(text.unicodeScalars)
        guard scalars.first == "{", scalars.last == "}" else { return nil }
        var result: [String] = []
        var index = 1
        let end = scalars.count - 1
        while index < end {
            var element = String.UnicodeScalarView()
            if scalars[index] == "\"" {
                index += 1
                while index < end, scalars[index] != "\"" {
                    if scalars[index] == "\\", index + 1 < end { index += 1 }
                    element.append(scalars[index])
                    index += 1
                }
                index += 1
            } else {
                while index < end, scalars[index] != "," {
                    element.append(scalars[index])
                    index += 1
                }
            }
            result.append(String(element))
            index += 1  // the comma
        }
        return result
    }

    static func trimmed(_ text: some StringProtocol) -> String {
        guard let first = text.firstIndex(where: { !$0.isWhitespace }) else { return "" }
        let last = text.lastIndex(where: { !$0.isWhitespace })!
        return String(text[first...last])
    }
}
