import Logging
import PostgresReplication
import PostgresWire

/// One replication slot of a source, as `ferry slot list` and `ferry status` show it.
public struct SlotInfo: Sendable, Equatable, Codable {
    public var name: String
    public var plugin: String?
    public var type: String
    public var database: String?
    public var active: Bool
    public var activePID: Int?
    public var confirmedFlush: String?
    /// How far the slot's confirmed position is behind the server's current WAL position.
    public var lagBytes: Int64?
    public var walStatus: String?
    public var safeWALSize: Int64?
}

/// Lists and drops replication slots. Never touches a slot it was not told to.
public enum SlotInventory {
    public static func list(on connection: PGConnection) async throws -> [SlotInfo] {
        let rows = try await connection.query("""
            SELECT slot_name, plugin, slot_type, database, active::text, active_pid::text, confirmed_flush_lsn::text,
                   pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END,
                                   coalesce(confirmed_flush_lsn, restart_lsn))::bigint::text,
                   wal_status, safe_wal_size::text
            FROM pg_replication_slots ORDER BY slot_name
            """)
        return rows.compactMap { row in
            guard row.count == 10, let name = row[0] else { return nil }
            return SlotInfo(name: name, plugin: row[1], type: row[2] ?? "", database: row[3], active: row[4] == "true",
                            activePID: row[5].flatMap { Int($0) }, confirmedFlush: row[6], lagBytes: row[7].flatMap { Int64($0) },
                            walStatus: row[8], safeWALSize: row[9].flatMap { Int64($0) })
        }
    }

    public static func slot(_ name: String, on connection: PGConnection) async throws -> SlotInfo? {
        try await list(on: connection).first { $0.name == name }
    }

    /// Drops `name`. An active slot is refused unless `terminateActive`, which ends the
    /// walsender holding it first.
    public static func drop(_ name: String, terminateActive: Bool, on connection: PGConnection) async throws {
        guard let slot = try await slot(name, on: connection) else {
            throw FerryError(.source, "replication slot \"\(name)\" does not exist", fix: "list the slots with ferry slot list")
        }
        if slot.active, let pid = slot.activePID {
            guard terminateActive else {
                throw FerryError(.source, "replication slot \"\(name)\" is in use by process \(pid)",
                                 fix: "stop its consumer first, or pass --force to terminate that walsender and drop the slot")
            }
            _ = try await connection.query("SELECT pg_terminate_backend(\(pid))")
            // The walsender releases the slot as it exits.
            for _ in 0..<100 {
                if try await self.slot(name, on: connection)?.active != true { break }
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        _ = try await connection.query("SELECT pg_drop_replication_slot('\(name.replacingOccurrences(of: "'", with: "''"))')")
    }
}
