import Foundation
import Logging
import PostgresReplication
import PostgresWire

/// One thing `ferry check` found, with the line that says what to do about it.
public struct Finding: Sendable, Equatable, Codable {
    public enum Severity: String, Sendable, Codable, Comparable, CaseIterable {
        case ok, info, warning, error

        private var rank: Int {
            switch self {
            case .ok: 0
            case .info: 1
            case .warning: 2
            case .error: 3
            }
        }

        public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rank < rhs.rank }
    }

    public var severity: Severity
    /// A stable identifier (`wal_level`, `replication_role`, `table_identity`, …) for machines.
    public var check: String
    public var message: String
    public var fix: String?

    public init(_ severity: Severity, _ check: String, _ message: String, fix: String? = nil) {
        self.severity = severity
        self.check = check
        self.message = message
        self.fix = fix
    }
}

/// Everything `ferry check` found about one source.
public struct PreflightReport: Sendable, Codable {
    public var source: String
    public var findings: [Finding]

    /// The worst severity found (`ok` when nothing was found at all).
    public var worst: Finding.Severity { findings.map(\.severity).max() ?? .ok }

    /// 0 when nothing worse than info, 1 with warnings, 2 with errors.
    public var exitStatus: Int32 {
        switch worst {
        case .ok, .info: 0
        case .warning: 1
        case .error: 2
        }
    }

    public func findings(_ check: String) -> [Finding] { findings.filter { $0.check == check } }
}

/// Preflight of a source: connects the way `ferry run` would and reports what would stop or
/// hurt replication — before it does.
public struct Preflight: Sendable {
    public var source: ConnectionConfiguration
    /// `schema.table` or `schema.*`; empty: the publication's tables.
    public var tables: [String]
    public var publication: String?
    public var slot: String?
    /// A slot lagging more than this is reported as a warning.
    public var lagWarningBytes: Int64 = 1 << 30
    /// Transactions open longer than this are reported (they hold up slot creation).
    public var longTransactionSeconds: Int = 300

    public init(source: ConnectionConfiguration, tables: [String] = [], publication: String? = nil, slot: String? = nil) {
        self.source = source
        self.tables = tables
        self.publication = publication
        self.slot = slot
    }

    public func run(logger: Logger = Logger(label: "ferry.check")) async -> PreflightReport {
        var findings: [Finding] = []
        let report = { PreflightReport(source: source.redactedDescription, findings: findings) }

        for endpoint in source.endpoints where Self.isPoolerHost(endpoint.host) {
            findings.append(Finding(.error, "pooler_host",
                "host \(endpoint.host) is a connection pooler endpoint: logical replication needs a direct connection",
                fix: "use the direct endpoint: remove \"-pooler\" from the host name (Neon) or connect past PgBouncer"))
        }

        let connection: PGConnection
        do {
            connection = try await PGConnection.connect(source, replication: nil, logger: logger)
        } catch {
            findings.append(Self.connectionFinding(error, check: "connect"))
            return report()
        }
        do {
            try await inspect(connection, into: &findings, logger: logger)
        } catch {
            findings.append(Finding(.error, "query", "a preflight query failed: \(error)",
                                    fix: "check that the role can read the catalogs (pg_catalog) of this database"))
        }
        await connection.close()
        return report()
    }

    static func isPoolerHost(_ host: String) -> Bool {
        let first = host.split(separator: ".").first.map(String.init) ?? host
        return first.hasSuffix("-pooler") || host.contains(".pooler.") || host.contains("pgbouncer")
    }

    static func connectionFinding(_ error: any Error, check: String) -> Finding {
        if let error = error as? PGConnectionError {
            return Finding(.error, check, error.message, fix: error.fix)
        }
        return Finding(.error, check, "\(error)")
    }

    private func inspect(_ connection: PGConnection, into findings: inout [Finding], logger: Logger) async throws {
        // Server and protocol.
        let version = connection.serverVersionNumber
        let versionText = try await scalar(connection, "SHOW server_version")
        let protocolVersion = PGOutputOptions.highestProtocolVersion(serverVersionNumber: version)
        if version < 100_000 {
            findings.append(Finding(.error, "server_version", "PostgreSQL \(versionText ?? "\(version)") has no pgoutput logical replication",
                                    fix: "upgrade to PostgreSQL 14 or newer"))
            return
        }
        let features = [protocolVersion >= 2 ? "streaming of large transactions" : nil,
                        protocolVersion >= 3 ? "two-phase" : nil,
                        protocolVersion >= 4 ? "parallel streaming" : nil].compactMap { $0 }
        findings.append(Finding(version >= 140_000 ? .ok : .warning, "server_version",
            "PostgreSQL \(versionText ?? "\(version)"), pgoutput protocol \(protocolVersion)"
                + (features.isEmpty ? "" : " (" + features.joined(separator: ", ") + ")"),
            fix: version >= 140_000 ? nil : "Ferry is tested with PostgreSQL 14 and newer; upgrade if you can"))

        // wal_level.
        let walLevel = try await setting(connection, "wal_level") ?? "unknown"
        if walLevel == "logical" {
            findings.append(Finding(.ok, "wal_level", "wal_level = logical"))
        } else {
            findings.append(Finding(.error, "wal_level", "wal_level = \(walLevel): logical decoding needs wal_level = logical",
                fix: "self-hosted: ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL. Neon: enable logical replication in the project settings (this restarts computes). RDS/Aurora: set rds.logical_replication = 1 in the parameter group and reboot"))
        }

        // Slots and walsenders.
        let maxSlots = Int(try await setting(connection, "max_replication_slots") ?? "") ?? 0
        let usedSlots = Int(try await scalar(connection, "SELECT count(*) FROM pg_replication_slots") ?? "") ?? 0
        let slotExists: Bool
        if let slot {
            slotExists = !(try await connection.query("SELECT 1 FROM pg_replication_slots WHERE slot_name = \(Self.literal(slot))")).isEmpty
        } else {
            slotExists = false
        }
        if maxSlots - usedSlots <= 0 && !slotExists {
            findings.append(Finding(.error, "replication_slots", "no free replication slot: \(usedSlots) of max_replication_slots = \(maxSlots) are in use",
                fix: "drop unused slots (ferry slot list / ferry slot drop NAME) or raise max_replication_slots (needs a restart)"))
        } else {
            findings.append(Finding(.ok, "replication_slots", "\(maxSlots - usedSlots) of \(maxSlots) replication slots free"))
        }
        let maxSenders = Int(try await setting(connection, "max_wal_senders") ?? "") ?? 0
        let usedSenders = Int(try await scalar(connection, "SELECT count(*) FROM pg_stat_replication") ?? "") ?? 0
        if maxSenders - usedSenders <= 0 {
            findings.append(Finding(.error, "wal_senders", "no free WAL sender: \(usedSenders) of max_wal_senders = \(maxSenders) are in use",
                fix: "stop another replication client or raise max_wal_senders (needs a restart)"))
        } else {
            findings.append(Finding(.ok, "wal_senders", "\(maxSenders - usedSenders) of \(maxSenders) WAL senders free"))
        }

        // The role.
        let roleRows = try await connection.query("""
            SELECT current_user, r.rolsuper::text, r.rolreplication::text,
                   EXISTS (SELECT 1 FROM pg_roles g WHERE g.rolname = 'rds_replication' AND pg_has_role(current_user, g.oid, 'member'))::text
            FROM pg_roles r WHERE r.rolname = current_user
            """)
        let role = roleRows.first ?? []
        let user = role.count > 0 ? role[0] ?? source.user : source.user
        let superuser = role.count > 1 && role[1] == "true"
        let replicationRole = superuser || (role.count > 2 && role[2] == "true") || (role.count > 3 && role[3] == "true")
        if replicationRole {
            findings.append(Finding(.ok, "replication_role", "role \(user) may replicate" + (superuser ? " (superuser)" : "")))
        } else {
            findings.append(Finding(.error, "replication_role", "role \(user) has neither REPLICATION nor superuser: it cannot open a replication connection",
                fix: "ALTER ROLE \(Self.identifier(user)) WITH REPLICATION; (RDS: GRANT rds_replication TO \(Self.identifier(user)); Neon: roles made in the console have it)"))
        }
        if replicationRole && walLevel == "logical" {
            do {
                let replication = try await PGConnection.connect(source, replication: .database, logger: logger)
                _ = try await replication.identifySystem()
                await replication.close()
                findings.append(Finding(.ok, "replication_connection", "a replication connection opens (IDENTIFY_SYSTEM answered)"))
            } catch {
                findings.append(Self.connectionFinding(error, check: "replication_connection"))
            }
        }

        // Publication.
        let publicationName = publication
        var publicationTables: Set<String> = []
        var publishesViaRoot = false
        var publicationExists = false
        if let publicationName {
            let rows = try await connection.query("SELECT puballtables::text, pubviaroot::text, pubinsert::text, pubupdate::text, pubdelete::text FROM pg_publication WHERE pubname = \(Self.literal(publicationName))")
            if let row = rows.first {
                publicationExists = true
                publishesViaRoot = row[1] == "true"
                let tableRows = try await connection.query("SELECT schemaname || '.' || tablename FROM pg_publication_tables WHERE pubname = \(Self.literal(publicationName))")
                publicationTables = Set(tableRows.compactMap { $0.first ?? nil })
                let missingActions = zip(["insert", "update", "delete"], row[2...4]).filter { $0.1 != "true" }.map(\.0)
                findings.append(Finding(missingActions.isEmpty ? .ok : .warning, "publication",
                    "publication \(publicationName) exists with \(publicationTables.count) table(s)"
                        + (missingActions.isEmpty ? "" : "; it does not publish \(missingActions.joined(separator: ", "))"),
                    fix: missingActions.isEmpty ? nil : "ALTER PUBLICATION \(Self.identifier(publicationName)) SET (publish = 'insert, update, delete, truncate') if you want those changes"))
            } else if tables.isEmpty {
                findings.append(Finding(.error, "publication", "publication \(publicationName) does not exist and no tables were named",
                    fix: "CREATE PUBLICATION \(Self.identifier(publicationName)) FOR TABLE …; or name the tables with --tables so ferry run creates it"))
            } else {
                findings.append(Finding(.info, "publication", "publication \(publicationName) does not exist: ferry run creates it for the named tables",
                    fix: superuser ? nil : "creating it needs ownership of the tables (FOR TABLES IN SCHEMA needs a superuser); or create it yourself"))
            }
        }

        // Tables.
        var checked: [(schema: String, name: String)] = []
        for pattern in tables {
            let parts = pattern.split(separator: ".", maxSplits: 1).map(String.init)
            guard parts.count == 2 else {
                findings.append(Finding(.error, "tables", "\(pattern) is not schema.table or schema.*", fix: "write tables as schema.table or schema.*"))
                continue
            }
            let condition = parts[1] == "*" ? "n.nspname = \(Self.literal(parts[0]))"
                : "n.nspname = \(Self.literal(parts[0])) AND c.relname = \(Self.literal(parts[1]))"
            let rows = try await connection.query("""
                SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE \(condition) AND c.relkind IN ('r', 'p') AND NOT c.relispartition ORDER BY 1, 2
                """)
            if rows.isEmpty {
                findings.append(Finding(.error, "tables", parts[1] == "*" ? "schema \(parts[0]) has no tables" : "table \(pattern) does not exist",
                                        fix: "check the name (schema.table, case-sensitive) or create the table"))
            }
            checked += rows.compactMap { row in row.count == 2 ? (row[0] ?? "", row[1] ?? "") : nil }
        }
        if tables.isEmpty {
            checked = publicationTables.sorted().map { name in
                let parts = name.split(separator: ".", maxSplits: 1).map(String.init)
                return (parts[0], parts.count > 1 ? parts[1] : "")
            }
        }
        for table in checked {
            try await inspectTable(table.schema, table.name, connection: connection, publicationExists: publicationExists,
                                   publicationName: publicationName, publicationTables: publicationTables,
                                   publishesViaRoot: publishesViaRoot, into: &findings)
        }

        // The slot.
        if let slot {
            try await inspectSlot(slot, connection: connection, into: &findings)
        }

        // Long-running transactions hold up CREATE_REPLICATION_SLOT.
        let long = try await connection.query("""
            SELECT pid::text, coalesce(usename, ''), extract(epoch FROM now() - xact_start)::bigint::text
            FROM pg_stat_activity
            WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid() AND (backend_xid IS NOT NULL OR backend_xmin IS NOT NULL)
              AND now() - xact_start > make_interval(secs => \(longTransactionSeconds))
            ORDER BY xact_start LIMIT 5
            """)
        if long.isEmpty {
            findings.append(Finding(.ok, "long_transactions", "no transaction open longer than \(longTransactionSeconds) s"))
        } else {
            let list = long.map { "pid \($0[0] ?? "?") (\($0[1] ?? "")) open \($0[2] ?? "?") s" }.joined(separator: ", ")
            findings.append(Finding(slotExists ? .info : .warning, "long_transactions",
                "long-running transactions: \(list); creating a slot waits until they end",
                fix: "end them (commit, or SELECT pg_terminate_backend(pid)) before the first ferry run"))
        }
    }

    private func inspectTable(_ schema: String, _ name: String, connection: PGConnection, publicationExists: Bool,
                              publicationName: String?, publicationTables: Set<String>, publishesViaRoot: Bool,
                              into findings: inout [Finding]) async throws {
        let qualified = "\(schema).\(name)"
        let regclass = Self.literal(Self.identifier(schema) + "." + Self.identifier(name))
        let rows = try await connection.query("""
            SELECT c.relreplident::text, c.relkind::text,
                   EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)::text,
                   has_table_privilege(c.oid, 'SELECT')::text,
                   (SELECT count(*) FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                        AND a.attstorage <> 'p')::text
            FROM pg_class c WHERE c.oid = \(regclass)::regclass
            """)
        guard let row = rows.first, row.count == 5 else { return }
        let identity = row[0] ?? "d"
        let partitioned = row[1] == "p"
        let hasKey = row[2] == "true"
        let toastable = Int(row[4] ?? "0") ?? 0

        if row[3] != "true" {
            findings.append(Finding(.error, "table_privilege", "the role cannot SELECT from \(qualified): the snapshot would fail",
                                    fix: "GRANT SELECT ON \(Self.identifier(schema)).\(Self.identifier(name)) TO \(Self.identifier(source.user))"))
        }
        switch identity {
        case "d" where hasKey:
            findings.append(Finding(.ok, "table_identity", "\(qualified) has a primary key"))
        case "i":
            findings.append(Finding(.ok, "table_identity", "\(qualified) uses REPLICA IDENTITY USING INDEX"))
        case "f":
            findings.append(Finding(.ok, "table_identity", "\(qualified) uses REPLICA IDENTITY FULL (old rows are sent whole)"))
        case "n":
            findings.append(Finding(.error, "table_identity", "\(qualified) has REPLICA IDENTITY NOTHING: once it is published, UPDATE and DELETE on the source fail",
                fix: "ALTER TABLE \(Self.identifier(schema)).\(Self.identifier(name)) REPLICA IDENTITY FULL; or give it a primary key"))
        default:
            findings.append(Finding(.error, "table_identity", "\(qualified) has no primary key and no replica identity: once it is published, UPDATE and DELETE on the source fail",
                fix: "ALTER TABLE \(Self.identifier(schema)).\(Self.identifier(name)) ADD PRIMARY KEY (…); or ALTER TABLE … REPLICA IDENTITY FULL"))
        }
        if identity != "f" && toastable > 0 {
            findings.append(Finding(.info, "toast_columns",
                "\(qualified) has \(toastable) TOAST-able column(s) under a non-FULL identity: an UPDATE that leaves a large value unchanged does not send it; Ferry carries it as unchanged (SQLite and Postgres replicas keep the stored value; JSON events omit it and list it in unchanged_toast)",
                fix: "ALTER TABLE \(Self.identifier(schema)).\(Self.identifier(name)) REPLICA IDENTITY FULL if consumers need every value in every event"))
        }
        if publicationExists, let publicationName {
            let covered = publicationTables.contains(qualified) || (partitioned && !publishesViaRoot)
            if !covered {
                findings.append(Finding(.error, "publication_tables", "publication \(publicationName) does not include \(qualified)",
                    fix: "ALTER PUBLICATION \(Self.identifier(publicationName)) ADD TABLE \(Self.identifier(schema)).\(Self.identifier(name))"))
            }
            if partitioned && !publishesViaRoot {
                findings.append(Finding(.warning, "publish_via_partition_root", "\(qualified) is partitioned and publication \(publicationName) publishes changes under each partition's name",
                    fix: "ALTER PUBLICATION \(Self.identifier(publicationName)) SET (publish_via_partition_root = true)"))
            }
        }
    }

    private func inspectSlot(_ slot: String, connection: PGConnection, into findings: inout [Finding]) async throws {
        let rows = try await connection.query("""
            SELECT plugin, slot_type, active::text, coalesce(active_pid::text, ''), wal_status,
                   coalesce(safe_wal_size::text, ''),
                   coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint::text, ''),
                   coalesce(database, '')
            FROM pg_replication_slots WHERE slot_name = \(Self.literal(slot))
            """)
        guard let row = rows.first, row.count == 8 else {
            findings.append(Finding(.info, "slot", "slot \(slot) does not exist yet: ferry run creates it and takes a snapshot"))
            return
        }
        if row[1] != "logical" || row[0] != "pgoutput" {
            findings.append(Finding(.error, "slot", "slot \(slot) is a \(row[1] ?? "?") slot with plugin \(row[0] ?? "none"), not a pgoutput logical slot",
                                    fix: "name another slot (--slot), or drop this one if it is unused"))
            return
        }
        if let database = row[7], !database.isEmpty, database != source.database {
            findings.append(Finding(.error, "slot", "slot \(slot) belongs to database \(database), not \(source.database)",
                                    fix: "connect to \(database), or name another slot"))
        }
        let lag = Int64(row[6] ?? "") ?? 0
        let walStatus = row[4] ?? "unknown"
        switch walStatus {
        case "lost":
            findings.append(Finding(.error, "slot_wal_status", "slot \(slot) is invalidated (wal_status = lost): the WAL it needed was removed",
                fix: "drop it (ferry slot drop \(slot)) and run again to re-snapshot, or use ferry run --resnapshot-on-slot-loss"))
        case "unreserved":
            findings.append(Finding(.warning, "slot_wal_status", "slot \(slot) is about to lose its WAL (wal_status = unreserved, safe_wal_size = \(row[5] ?? ""))",
                fix: "run ferry now so it catches up, or raise max_slot_wal_keep_size"))
        default:
            findings.append(Finding(.ok, "slot_wal_status", "slot \(slot): wal_status = \(walStatus)" + ((row[5] ?? "").isEmpty ? "" : ", safe_wal_size = \(Self.bytes(Int64(row[5]!) ?? 0))")))
        }
        let active = row[2] == "true"
        let lagFinding = "slot \(slot) is \(active ? "active (pid \(row[3] ?? ""))" : "inactive") and \(Self.bytes(lag)) behind"
        if lag >= lagWarningBytes {
            findings.append(Finding(.warning, "slot_lag", lagFinding + ": it pins that much WAL on the source",
                fix: active ? "the consumer is falling behind: look at its destinations" : "start ferry run so the slot advances, or drop the slot if it is abandoned (ferry slot drop \(slot))"))
        } else {
            findings.append(Finding(.ok, "slot_lag", lagFinding))
        }
    }

    private func setting(_ connection: PGConnection, _ name: String) async throws -> String? {
        try await scalar(connection, "SELECT setting FROM pg_settings WHERE name = \(Self.literal(name))")
    }

    private func scalar(_ connection: PGConnection, _ sql: String) async throws -> String? {
        let rows = try await connection.query(sql)
        guard let row = rows.first, let value = row.first else { return nil }
        return value
    }

    public static func bytes(_ value: Int64) -> String {
        let units = ["B", "kB", "MB", "GB", "TB"]
        var amount = Double(value)
        var unit = 0
        while abs(amount) >= 1024 && unit < units.count - 1 {
            amount /= 1024
            unit += 1
        }
        return unit == 0 ? "\(value) B" : String(format: "%.1f %@", amount, units[unit])
    }

    static func literal(_ value: String) -> String { SourceSetup.literal(value) }
    static func identifier(_ value: String) -> String { SourceSetup.identifier(value) }
}
