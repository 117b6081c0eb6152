import FerryCore
import FerryJSON
import Foundation
import PostgresWire
import Testing

/// A fresh file path in a temporary directory, removed afterwards.
func withTemporaryFile<T>(_ body: (String) async throws -> T) async throws -> T {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ferry-jsonl-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    return try await body(directory.appendingPathComponent("changes.jsonl").path)
}

/// The file's lines, each parsed as a JSON object.
func lines(_ path: String) throws -> [[String: Any]] {
    let text = try String(contentsOfFile: path, encoding: .utf8)
    return try text.split(separator: "\n").map {
        try #require(JSONSerialization.jsonObject(with: Data($0.utf8), options: [.fragmentsAllowed]) as? [String: Any])
    }
}

let users = TableSchema(relationID: 16384, schema: "public", name: "users", columns: [
    .init(name: "id", typeOID: TypeOID.int4, isKey: true),
    .init(name: "name", typeOID: TypeOID.text),
    .init(name: "bio", typeOID: TypeOID.text),
    .init(name: "amount", typeOID: TypeOID.numeric),
])

func commitTime(_ n: Int64) -> PostgresTimestamp { PostgresTimestamp(microsecondsSince1970: 1_709_214_300_000_000 + n * 1000) }

func transaction(_ n: UInt64, _ changes: [Change]) -> [PipelineEvent] {
    let info = TransactionInfo(xid: UInt32(700 + n), commitLSN: LSN(n * 0x100), commitTime: commitTime(Int64(n)))
    var events: [PipelineEvent] = [.begin(info)]
    for (index, change) in changes.enumerated() {
        events.append(.change(change, lsn: LSN(n * 0x100 - 0x80 + UInt64(index))))
    }
    events.append(.commit(info, endLSN: LSN(n * 0x100 + 0x10)))
    return events
}

@Suite struct JSONLinesDestinationTests {
    @Test func changesAreWrittenInTheDebeziumEnvelope() async throws {
        try await withTemporaryFile { path in
            let destination = JSONLinesDestination(path: path, pipeline: "orders-sync", database: "shop")
            #expect(try await destination.open().durablePosition == nil)
            try await destination.write(transaction(1, [
                .insert(table: users, row: [.int32(1), .text("ada"), .null, .numeric("12.50")]),
                .update(table: users, old: nil, oldIsKeyOnly: false, row: [.int32(1), .text("ada l."), .null, .numeric("13")]),
                .update(table: users, old: [.int32(1), .null, .null, .null], oldIsKeyOnly: true, row: [.int32(2), .text("ada l."), .null, .numeric("13")]),
                .delete(table: users, old: [.int32(2), .null, .null, .null], oldIsKeyOnly: true),
                .truncate(tables: [users, users], cascade: false, restartIdentity: false),
            ]))
            #expect(try await destination.flush() == LSN(0x110))
            let written = try lines(path)
            #expect(written.count == 6)
            #expect(written.map { $0["op"] as? String } == ["c", "u", "u", "d", "t", "t"])

            let insert = written[0]
            #expect(insert["before"] is NSNull)
            let after = try #require(insert["after"] as? [String: Any])
            #expect(after["id"] as? Int == 1)
            #expect(after["name"] as? String == "ada")
            #expect(after["bio"] is NSNull) // a real NULL is null
            #expect(after["amount"] as? String == "12.50") // numeric as an exact string
            #expect(insert["unchanged_toast"] == nil)
            #expect((insert["ts_ms"] as? Int ?? 0) > 1_700_000_000_000)
            let source = try #require(insert["source"] as? [String: Any])
            #expect(source["connector"] as? String == "ferry")
            #expect(source["name"] as? String == "orders-sync")
            #expect(source["db"] as? String == "shop")
            #expect(source["schema"] as? String == "public")
            #expect(source["table"] as? String == "users")
            #expect(source["txId"] as? Int == 701)
            #expect(source["lsn"] as? Int == 0x80)
            #expect(source["ts_ms"] as? Int == 1_709_214_300_001)
            #expect(source["snapshot"] as? String == "false")

            #expect(written[1]["before"] is NSNull)
            // A key change: the old key only.
            let keyChange = try #require(written[2]["before"] as? [String: Any])
            #expect(keyChange.count == 1 && keyChange["id"] as? Int == 1)
            #expect((written[2]["after"] as? [String: Any])?["id"] as? Int == 2)
            let deleted = try #require(written[3]["before"] as? [String: Any])
            #expect(deleted.count == 1 && deleted["id"] as? Int == 2)
            #expect(written[3]["after"] is NSNull)
            #expect(written[4]["before"] is NSNull && written[4]["after"] is NSNull)
            #expect((written[4]["source"] as? [String: Any])?["table"] as? String == "users")
            #expect(written.map { ($0["source"] as? [String: Any])?["lsn"] as? Int } == [0x80, 0x81, 0x82, 0x83, 0x84, 0x84])
            try await destination.close()
        }
    }

    @Test func unchangedToastIsAbsentAndListed() async throws {
        try await withTemporaryFile { path in
            let destination = JSONLinesDestination(path: path, pipeline: "p", database: "db")
            _ = try await destination.open()
            try await destination.write(transaction(1, [
                .update(table: users, old: nil, oldIsKeyOnly: false, row: [.int32(1), .text("ada"), .unchangedToast, .numeric("1")]),
            ]))
            _ = try await destination.flush()
            let line = try #require(try lines(path).first)
            let after = try #require(line["after"] as? [String: Any])
            #expect(after.keys.sorted() == ["amount", "id", "name"])
            #expect(line["unchanged_toast"] as? [String] == ["bio"])
            let text = try String(contentsOfFile: path, encoding: .utf8)
            #expect(!text.contains("__debezium_unavailable_value"))
            try await destination.close()
        }
    }

    @Test func fullIdentityBeforeHasTheWholeRowAndValuesAreTyped() async throws {
        try await withTemporaryFile { path in
            let table = TableSchema(relationID: 2, schema: "public", name: "typed", columns: [
                .init(name: "flag", typeOID: TypeOID.bool, isKey: true),
                .init(name: "f8", typeOID: TypeOID.float8, isKey: true),
                .init(name: "data", typeOID: TypeOID.bytea, isKey: true),
                .init(name: "at", typeOID: TypeOID.timestamptz, isKey: true),
                .init(name: "doc", typeOID: TypeOID.jsonb, isKey: true),
                .init(name: "tags", typeOID: 1007, isKey: true),
            ], replicaIdentity: .full)
            let row: Row = [
                .bool(true), .float64(2.5), .bytes([0, 1, 255]),
                .timestamptz(Value.Timestamp(microsecondsSince1970: 1_709_214_300_500_000)),
                .jsonb(#"{"a": [1, 2]}"#), .array(.init(elementTypeOID: TypeOID.int4, elements: [.int32(1), .null])),
            ]
            let destination = JSONLinesDestination(path: path, pipeline: "p", database: "db")
            _ = try await destination.open()
            try await destination.write(transaction(1, [.delete(table: table, old: row, oldIsKeyOnly: false)]))
            _ = try await destination.flush()
            let line = try #require(try lines(path).first)
            let before = try #require(line["before"] as? [String: Any])
            #expect(before["flag"] as? Bool == true)
            #expect(before["f8"] as? Double == 2.5)
            #expect(before["data"] as? String == "AAH/")
            #expect(before["at"] as? String == "2024-02-29T13:45:00.5Z")
            #expect((before["doc"] as? [String: Any])?["a"] as? [Int] == [1, 2])
            let tags = try #require(before["tags"] as? [Any])
            #expect(tags.count == 2 && tags[0] as? Int == 1 && tags[1] is NSNull)
            try await destination.close()
        }
    }

    @Test func snapshotRowsSchemaChangesAndMessages() async throws {
        try await withTemporaryFile { path in
            let destination = JSONLinesDestination(path: path, pipeline: "p", database: "db")
            _ = try await destination.open()
            let wider = TableSchema(relationID: users.relationID, schema: "public", name: "users",
                                    columns: users.columns + [.init(name: "email", typeOID: TypeOID.varchar, typeName: "varchar")])
            try await destination.write([
                .snapshotTableStarted(users),
                .snapshotRow(table: users, row: [.int32(1), .text("ada"), .text("bio"), .numeric("0")]),
                .snapshotTableFinished(users),
                .schemaChange(SchemaChange(old: users, new: wider)),
                .message(prefix: "ferry", content: Array("hello".utf8), lsn: LSN(0x42), transactional: false),
            ])
            #expect(try await destination.flush() == nil) // no commit written yet
            let written = try lines(path)
            #expect(written.map { $0["op"] as? String } == ["r", "schema", "m"])
            let snapshotSource = try #require(written[0]["source"] as? [String: Any])
            #expect(snapshotSource["snapshot"] as? String == "true")
            #expect(snapshotSource["lsn"] is NSNull && snapshotSource["txId"] is NSNull)
            #expect((written[0]["after"] as? [String: Any])?["bio"] as? String == "bio")

            let schema = written[1]
            let changes = try #require(schema["changes"] as? [[String: Any]])
            #expect(changes.count == 1)
            #expect(changes[0]["type"] as? String == "column_added" && changes[0]["column"] as? String == "email")
            let columns = try #require(schema["columns"] as? [[String: Any]])
            #expect(columns.map { $0["name"] as? String } == ["id", "name", "bio", "amount", "email"])
            #expect(columns[0]["key"] as? Bool == true && columns[0]["type_oid"] as? Int == 23)
            #expect(columns[4]["type_name"] as? String == "varchar")
            #expect(schema["replica_identity"] as? String == "default")
            #expect((schema["source"] as? [String: Any])?["table"] as? String == "users")

            let message = try #require(written[2]["message"] as? [String: Any])
            #expect(message["prefix"] as? String == "ferry" && message["content"] as? String == "aGVsbG8=")
            #expect((written[2]["source"] as? [String: Any])?["lsn"] as? Int == 0x42)
            try await destination.close()
        }
    }

    @Test func flushReportsTheLastCommitAndLinesOfAnOpenTransactionMayBeWritten() async throws {
        try await withTemporaryFile { path in
            let destination = JSONLinesDestination(path: path, pipeline: "p", database: "db")
            _ = try await destination.open()
            let one = transaction(1, [.insert(table: users, row: [.int32(1), .text("a"), .null, .null])])
            let two = transaction(2, [.insert(table: users, row: [.int32(2), .text("b"), .null, .null])])
            try await destination.write(one + two.dropLast())
            #expect(try await destination.flush() == LSN(0x110))
            #expect(try lines(path).count == 2) // at-least-once: the open transaction's line is there
            try await destination.write(Array(two.suffix(1)))
            #expect(try await destination.flush() == LSN(0x210))
            try await destination.close()
            // Nothing new: the position stays (cumulative).
            #expect(try await destination.flush() == LSN(0x210))
        }
    }

    @Test func linesAreBufferedThenWrittenWhenTheBufferFills() async throws {
        try await withTemporaryFile { path in
            let destination = JSONLinesDestination(path: path, pipeline: "p", database: "db", bufferSize: 64 * 1024)
            _ = try await destination.open()
            try await destination.write(transaction(1, [.insert(table: users, row: [.int32(1), .text("small"), .null, .null])]))
            #expect(try String(contentsOfFile: path, encoding: .utf8).isEmpty)
            let big = String(repeating: "é", count: 40_000) // 80 KB of UTF-8
            try await destination.write(transaction(2, [.insert(table: users, row: [.int32(2), .text(big), .null, .null])]))
            #expect(try lines(path).count == 2)
            try await destination.close()
        }
    }

    @Test func reopeningAppendsAndEndsACutLine() async throws {
        try await withTemporaryFile { path in
            try Data((#"{"op":"c","after":{"id":1}}"# + "\n" + #"{"op":"c","aft"#).utf8).write(to: URL(fileURLWithPath: path))
            let destination = JSONLinesDestination(path: path, pipeline: "p", database: "db")
            _ = try await destination.open()
            try await destination.write(transaction(1, [.insert(table: users, row: [.int32(2), .text("b"), .null, .null])]))
            try await destination.close()
            let text = try String(contentsOfFile: path, encoding: .utf8)
            let rawLines = text.split(separator: "\n", omittingEmptySubsequences: false)
            #expect(rawLines.count == 4 && rawLines[3].isEmpty)
            #expect(rawLines[1] == #"{"op":"c","aft"#)
            let last = try #require(JSONSerialization.jsonObject(with: Data(rawLines[2].utf8)) as? [String: Any])
            #expect((last["after"] as? [String: Any])?["id"] as? Int == 2)
        }
    }

    @Test func outputArgument() {
        #expect(JSONLinesDestination.Output("-") == .standardOutput)
        #expect(JSONLinesDestination.Output("out.jsonl") == .file("out.jsonl"))
        let destination = JSONLinesDestination(path: "-", pipeline: "p", database: "db")
        #expect(destination.name == "jsonl:-")
        #expect(destination.output == .standardOutput)
    }
}
