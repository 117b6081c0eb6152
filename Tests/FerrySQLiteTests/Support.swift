import FerryCore
import FerrySQLite
import Foundation
import PostgresWire
import Testing

/// A fresh directory under the system's temporary directory, removed afterwards.
func withTemporaryDirectory<T>(_ body: (String) async throws -> T) async throws -> T {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ferry-sqlite-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    return try await body(directory.path)
}

/// `public.users(id int4 key, name text, bio text, score float8)`.
func usersTable(identity: TableSchema.ReplicaIdentity = .default, relationID: UInt32 = 16384) -> TableSchema {
    TableSchema(relationID: relationID, schema: "public", name: "users", columns: [
        .init(name: "id", typeOID: TypeOID.int4, isKey: identity == .full || identity != .nothing),
        .init(name: "name", typeOID: TypeOID.text, isKey: identity == .full),
        .init(name: "bio", typeOID: TypeOID.text, isKey: identity == .full),
        .init(name: "score", typeOID: TypeOID.float8, isKey: identity == .full),
    ], replicaIdentity: identity)
}

func user(_ id: Int32, _ name: String, bio: Value = .null, score: Double = 1.5) -> Row {
    [.int32(id), .text(name), bio, .float64(score)]
}

/// A log without a key: `public.events(at text, what text)`, REPLICA IDENTITY FULL (PostgreSQL
/// marks every column as identity).
func eventsTable() -> TableSchema {
    TableSchema(relationID: 16400, schema: "public", name: "events", columns: [
        .init(name: "at", typeOID: TypeOID.text, isKey: true),
        .init(name: "what", typeOID: TypeOID.text, isKey: true),
    ], replicaIdentity: .full)
}

/// Transaction `n`: xid `n`, commit record at `n * 0x100`, ending at `n * 0x100 + 0x10`.
func transaction(_ n: UInt64) -> (info: TransactionInfo, end: LSN) {
    let info = TransactionInfo(xid: UInt32(n), commitLSN: LSN(n * 0x100), commitTime: PostgresTimestamp(rawValue: Int64(n) * 1_000_000))
    return (info, LSN(n * 0x100 + 0x10))
}

/// `begin`, the changes (their LSNs inside the transaction), `commit`.
func transactionEvents(_ n: UInt64, _ changes: [Change]) -> [PipelineEvent] {
    let (info, end) = transaction(n)
    var events: [PipelineEvent] = [.begin(info)]
    for (index, change) in changes.enumerated() {
        events.append(.change(change, lsn: LSN(n * 0x100 - 0x80 + UInt64(index))))
    }
    events.append(.commit(info, endLSN: end))
    return events
}

/// Every row of a replica table, ordered by its first column then rowid.
func rows(_ path: String, _ table: String, columns: String = "*", order: String? = nil) throws -> [[SQLiteValue]] {
    let db = try SQLiteConnection(path: path, readOnly: true)
    let quoted = "\"" + table + "\""
    return try db.query("SELECT \(columns) FROM \(quoted) ORDER BY \(order ?? "1, rowid")")
}

func storedPosition(_ path: String, pipeline: String = "p") throws -> String? {
    let db = try SQLiteConnection(path: path, readOnly: true)
    return try db.query("SELECT lsn FROM _ferry_position WHERE pipeline = ?", [.text(pipeline)]).first?.first?.text
}
