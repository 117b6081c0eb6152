import FerryCore
import FerrySQLite
import FerryTestSupport
import Foundation
import PostgresWire
import Testing

@Suite struct SQLiteDestinationTests {
    @Test func insertUpdateDeleteTruncate() async throws {
        try await withTemporaryDirectory { dir in
            let path = dir + "/replica.db"
            let users = usersTable()
            let destination = SQLiteDestination(path: path, pipeline: "p")
            #expect(try await destination.open().durablePosition == nil)
            #expect(try await destination.flush() == nil)

            try await destination.write(transactionEvents(1, [
                .insert(table: users, row: user(1, "ada")),
                .insert(table: users, row: user(2, "bob")),
                .insert(table: users, row: user(3, "cy")),
            ]))
            try await destination.write(transactionEvents(2, [
                .update(table: users, old: nil, oldIsKeyOnly: false, row: user(2, "bobby", score: 2.5)),
                .delete(table: users, old: [.int32(3), .null, .null, .null], oldIsKeyOnly: true),
            ]))
            #expect(try await destination.flush() == transaction(2).end)
            #expect(try rows(path, "public.users") == [
                [.integer(1), .text("ada"), .null, .real(1.5)],
                [.integer(2), .text("bobby"), .null, .real(2.5)],
            ])
            #expect(try storedPosition(path) == transaction(2).end.description)

            // An update of a row the replica does not have inserts it.
            try await destination.write(transactionEvents(3, [
                .update(table: users, old: nil, oldIsKeyOnly: false, row: user(4, "dee")),
            ]))
            #expect(try await destination.flush() == transaction(3).end)
            #expect(try rows(path, "public.users", columns: "id") == [[.integer(1)], [.integer(2)], [.integer(4)]])

            // A table whose columns are all key: inserting a row again changes nothing.
            let pairs = TableSchema(relationID: 3, schema: "public", name: "pairs", columns: [
                .init(name: "a", typeOID: TypeOID.int4, isKey: true), .init(name: "b", typeOID: TypeOID.int4, isKey: true),
            ])
            try await destination.write(transactionEvents(4, [
                .insert(table: pairs, row: [.int32(1), .int32(2)]), .insert(table: pairs, row: [.int32(1), .int32(2)]),
            ]))

            try await destination.write(transactionEvents(5, [.truncate(tables: [users], cascade: false, restartIdentity: false)]))
            #expect(try await destination.flush() == transaction(5).end)
            #expect(try rows(path, "public.users").isEmpty)
            #expect(try rows(path, "public.pairs") == [[.integer(1), .integer(2)]])
            try await destination.close()
        }
    }

    @Test func tableIsCreatedWithAffinitiesAndPrimaryKey() async throws {
        try await withTemporaryDirectory { dir in
            let path = dir + "/replica.db"
            let table = TableSchema(relationID: 1, schema: "my \"schema\"", name: "All.Types", columns: [
                .init(name: "k1", typeOID: TypeOID.int8, isKey: true),
                .init(name: "k2", typeOID: TypeOID.text, isKey: true),
                .init(name: "flag", typeOID: TypeOID.bool),
                .init(name: "f4", typeOID: TypeOID.float4),
                .init(name: "amount", typeOID: TypeOID.numeric),
                .init(name: "data", typeOID: TypeOID.bytea),
                .init(name: "at", typeOID: TypeOID.timestamptz),
                .init(name: "tags", typeOID: 1009),
            ])
            let destination = SQLiteDestination(path: path, pipeline: "p")
            _ = try await destination.open()
            try await destination.write([.snapshotTableStarted(table)])
            _ = try await destination.flush()
            let db = try SQLiteConnection(path: path)
            let info = try db.query("SELECT name, type, pk FROM pragma_table_info(?)", [.text("my \"schema\".All.Types")])
            #expect(info == [
                [.text("k1"), .text("INTEGER"), .integer(1)],
                [.text("k2"), .text("TEXT"), .integer(2)],
                [.text("flag"), .text("INTEGER"), .integer(0)],
                [.text("f4"), .text("REAL"), .integer(0)],
                [.text("amount"), .text("TEXT"), .integer(0)],
                [.text("data"), .text("BLOB"), .integer(0)],
                [.text("at"), .text("TEXT"), .integer(0)],
                [.text("tags"), .text("TEXT"), .integer(0)],
            ])
            try await destination.close()
        }
    }

    @Test func valuesAreStoredByTheTypeMapping() async throws {
        try await withTemporaryDirectory { dir in
            let path = dir + "/replica.db"
            let table = TableSchema(relationID: 2, schema: "public", name: "typed", columns: [
                .init(name: "id", typeOID: TypeOID.int2, isKey: true),
                .init(name: "flag", typeOID: TypeOID.bool),
                .init(name: "f4", typeOID: TypeOID.float4),
                .init(name: "f8", typeOID: TypeOID.float8),
                .init(name: "amount", typeOID: TypeOID.numeric),
                .init(name: "data", typeOID: TypeOID.bytea),
                .init(name: "day", typeOID: TypeOID.date),
                .init(name: "at", typeOID: TypeOID.timestamptz),
                .init(name: "local", typeOID: TypeOID.timestamp),
                .init(name: "doc", typeOID: TypeOID.jsonb),
                .init(name: "tags", typeOID: 1007),
                .init(name: "uid", typeOID: TypeOID.uuid),
                .init(name: "cash", typeOID: TypeOID.money),
                .init(name: "empty", typeOID: TypeOID.bytea),
            ])
            let at = Value.Timestamp(microsecondsSince1970: 1_709_214_300_500_000) // 2024-02-29 13:45:00.5 UTC
            let row: Row = [
                .int16(7), .bool(true), .float32(1.1), .float64(.nan), .numeric("12345678901234567890.50"),
                .bytes([0, 1, 255]), .date(Value.Date(year: 2024, month: 2, day: 29)!), .timestamptz(at), .timestamp(at),
                .jsonb(#"{"a": [1, 2]}"#), .array(.init(elementTypeOID: TypeOID.int4, elements: [.int32(1), .null, .int32(3)])),
                .uuid(Value.UUID(high: 0xa0ee_bc99_9c0b_4ef8, low: 0xbb6d_6bb9_bd38_0a11)), .money(-123_456), .bytes([]),
            ]
            let destination = SQLiteDestination(path: path, pipeline: "p")
            _ = try await destination.open()
            try await destination.write(transactionEvents(1, [.insert(table: table, row: row)]))
            _ = try await destination.flush()
            #expect(try rows(path, "public.typed") == [[
                .integer(7), .integer(1), .real(1.1), .text("NaN"), .text("12345678901234567890.50"),
                .blob([0, 1, 255]), .text("2024-02-29"), .text("2024-02-29 13:45:00.5+00:00"), .text("2024-02-29 13:45:00.5"),
                .text(#"{"a": [1, 2]}"#), .text("{1,NULL,3}"),
                .text("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"), .text("-1234.56"), .blob([]),
            ]])
            // SQLite's date functions read the timestamps.
            let db = try SQLiteConnection(path: path, readOnly: true)
            #expect(try db.query(#"SELECT datetime("at"), datetime("local"), json_extract("doc", '$.a[1]') FROM "public.typed""#)
                == [[.text("2024-02-29 13:45:00"), .text("2024-02-29 13:45:00"), .integer(2)]])
            try await destination.close()
        }
    }

    @Test func keyChangeUpdatesTheRowFoundByItsOldKey() async throws {
        try await withTemporaryDirectory { dir in
            let path = dir + "/replica.db"
            let users = usersTable()
            let destination = SQLiteDestination(path: path, pipeline: "p")
            _ = try await destination.open()
            try await destination.write(transactionEvents(1, [
                .insert(table: users, row: user(1, "ada")),
                .insert(table: users, row: user(2, "bob")),
            ]))
            try await destination.write(transactionEvents(2, [
                .update(table: users, old: [.int32(1), .null, .null, .null], oldIsKeyOnly: true, row: user(10, "ada")),
                // The old key is missing from the replica: the row is inserted.
                .update(table: users, old: [.int32(99), .null, .null, .null], oldIsKeyOnly: true, row: user(20, "zed")),
            ]))
            _ = try await destination.flush()
            #expect(try rows(path, "public.users", columns: "id, name") == [
                [.integer(2), .text("bob")], [.integer(10), .text("ada")], [.integer(20), .text("zed")],
            ])
            try await destination.close()
        }
    }

    @Test func unchangedToastKeepsTheStoredValue() async throws {
        try await withTemporaryDirectory { dir in
            let path = dir + "/replica.db"
            let users = usersTable()
            let long = String(repeating: "x", count: 10_000)
            let destination = SQLiteDestination(path: path, pipeline: "p")
            _ = try await destination.open()
            try await destination.write(transactionEvents(1, [.insert(table: users, row: user(1, "ada", bio: .text(long)))]))
            try await destination.write(transactionEvents(2, [
                .update(table: users, old: nil, oldIsKeyOnly: false, row: user(1, "ada lovelace", bio: .unchangedToast, score: 9)),
            ]))
            try await destination.write(transactionEvents(3, [
                // With a key change too.
                .update(table: users, old: [.int32(1), .null, .null, .null], oldIsKeyOnly: true,
                        row: user(2, "countess", bio: .unchangedToast, score: 10)),
            ]))
            _ = try await destination.flush()
            #expect(try rows(path, "public.users") == [[.integer(2), .text("countess"), .text(long), .real(10)]])
            try await destination.close()
        }
    }

    @Test func fullIdentityTableWithoutKey() async throws {
        try await withTemporaryDirectory { dir in
            let path = dir + "/replica.db"
            let events = eventsTable()
            let destination = SQLiteDestination(path: path, pipeline: "p")
            _ = try await destination.open()
            try await destination.write(transactionEvents(1, [
                .insert(table: events, row: [.text("9:00"), .text("tea")]),
                .insert(table: events, row: [.text("9:00"), .text("tea")]),
                .insert(table: events, row: [.text("10:00"), .null]),
            ]))
            try await destination.write(transactionEvents(2, [
                // Updates one of the two identical rows.
                .update(table: events, old: [.text("9:00"), .text("tea")], oldIsKeyOnly: false, row: [.text("9:00"), .text("coffee")]),
                // NULLs match (IS).
                .update(table: events, old: [.text("10:00"), .null], oldIsKeyOnly: false, row: [.text("10:00"), .text("walk")]),
            ]))
            _ = try await destination.flush()
            #expect(try rows(path, "public.events", order: "rowid") == [
                [.text("9:00"), .text("coffee")], [.text("9:00"), .text("tea")], [.text("10:00"), .text("walk")],
            ])
            try await destination.write(transactionEvents(3, [
                .delete(table: events, old: [.text("9:00"), .text("tea")], oldIsKeyOnly: false),
            ]))
            _ = try await destination.flush()
            #expect(try rows(path, "public.events", order: "rowid") == [[.text("9:00"), .text("coffee")], [.text("10:00"), .text("walk")]])
            let db = try SQLiteConnection(path: path, readOnly: true)
            #expect(try db.query("SELECT count(*) FROM pragma_table_info('public.events') WHERE pk > 0") == [[.integer(0)]])
            try await destination.close()
        }
    }

    @Test func redeliveryAfterReopenIsSkippedThanksToTheStoredPosition() async throws {
        try await withTemporaryDirectory { dir in
            let path = dir + "/replica.db"
            let events = eventsTable() // no key: a duplicate would show
            let first = transactionEvents(1, [.insert(table: events, row: [.text("9:00"), .text("tea")])])
            let second = transactionEvents(2, [.insert(table: events, row: [.text("10:00"), .text("walk")])])
            do {
                let destination = SQLiteDestination(path: path, pipeline: "p")
                _ = try await destination.open()
                try await destination.write(first + second)
                #expect(try await destination.flush() == transaction(2).end)
                try await destination.close()
            }
            let destination = SQLiteDestination(path: path, pipeline: "p")
            #expect(try await destination.open().durablePosition == transaction(2).end)
            // Delivered again (at-least-once), plus a new transaction.
            let third = transactionEvents(3, [.insert(table: events, row: [.text("11:00"), .text("nap")])])
            try await destination.write(first + second + third)
            #expect(try await destination.flush() == transaction(3).end)
            #expect(try rows(path, "public.events", columns: "what", order: "rowid") == [[.text("tea")], [.text("walk")], [.text("nap")]])
            // Another pipeline's position is its own.
            let other = SQLiteDestination(path: path, pipeline: "q")
            #expect(try await other.open().durablePosition == nil)
            try await other.close()
            try await destination.close()
        }
    }

    @Test func transactionSplitOverTwoDeliveries() async throws {
        try await withTemporaryDirectory { dir in
            let path = dir + "/replica.db"
            let users = usersTable()
            let destination = SQLiteDestination(path: path, pipeline: "p")
            _ = try await destination.open()
            let one = transactionEvents(1, [.insert(table: users, row: user(1, "ada"))])
            let two = transactionEvents(2, [.insert(table: users, row: user(2, "bob")), .insert(table: users, row: user(3, "cy"))])
            // Transaction 1 complete, then transaction 2 ends in the next delivery.
            try await destination.write(one + two.prefix(2))
            #expect(try await destination.flush() == transaction(1).end)
            #expect(try rows(path, "public.users", columns: "id") == [[.integer(1)]])
            try await destination.write(Array(two.dropFirst(2)))
            #expect(try await destination.flush() == transaction(2).end)
            #expect(try rows(path, "public.users", columns: "id") == [[.integer(1)], [.integer(2)], [.integer(3)]])
            try await destination.close()
        }
    }

    @Test func crashMidTransactionLosesOnlyTheIncompleteTransaction() async throws {
        try await withTemporaryDirectory { dir in
            let path = dir + "/replica.db"
            let users = usersTable()
            do {
                let destination = SQLiteDestination(path: path, pipeline: "p")
                _ = try await destination.open()
                try await destination.write(transactionEvents(1, [.insert(table: users, row: user(1, "ada"))]))
                #expect(try await destination.flush() == transaction(1).end)
                let two = transactionEvents(2, [.insert(table: users, row: user(2, "bob")), .update(table: users, old: nil, oldIsKeyOnly: false, row: user(1, "changed"))])
                try await destination.write(Array(two.dropLast()))
                // Dropped without flush or close, as in a crash.
            }
            let destination = SQLiteDestination(path: path, pipeline: "p")
            #expect(try await destination.open().durablePosition == transaction(1).end)
            #expect(try rows(path, "public.users", columns: "id, name") == [[.integer(1), .text("ada")]])
            // The transaction is delivered again, completely this time.
            try await destination.write(transactionEvents(2, [.insert(table: users, row: user(2, "bob"))]))
            #expect(try await destination.flush() == transaction(2).end)
            #expect(try rows(path, "public.users", columns: "id, name") == [[.integer(1), .text("ada")], [.integer(2), .text("bob")]])
            try await destination.close()
        }
    }

    @Test func transactionStartedAgainDiscardsItsPartialChanges() async throws {
        try await withTemporaryDirectory { dir in
            let path = dir + "/replica.db"
            let events = eventsTable()
            let destination = SQLiteDestination(path: path, pipeline: "p")
            _ = try await destination.open()
            try await destination.write(transactionEvents(1, [.insert(table: events, row: [.text("1"), .text("a")])]))
            let two = transactionEvents(2, [.insert(table: events, row: [.text("2"), .text("b")])])
            try await destination.write(Array(two.dropLast()))
            try await destination.write(two) // from its begin again
            #expect(try await destination.flush() == transaction(2).end)
            #expect(try rows(path, "public.events", columns: "at", order: "rowid") == [[.text("1")], [.text("2")]])
            try await destination.close()
        }
    }

    @Test func snapshotRowsAreBatchedAndIdempotentThenSchemaChangeAddsAColumn() async throws {
        try await withTemporaryDirectory { dir in
            let path = dir + "/replica.db"
            let users = usersTable()
            let destination = SQLiteDestination(path: path, pipeline: "p", batchRows: 100)
            _ = try await destination.open()
            let snapshot: [PipelineEvent] = [.snapshotTableStarted(users)]
                + (1...250).map { .snapshotRow(table: users, row: user(Int32($0), "u\($0)")) }
            try await destination.write(snapshot)
            // 200 rows are committed by the batch size, before any flush.
            #expect(try rows(path, "public.users", columns: "count(*)") == [[.integer(200)]])
            // A resumed chunk delivers rows again: no duplicates.
            try await destination.write((201...250).map { .snapshotRow(table: users, row: user(Int32($0), "again\($0)")) }
                + [.snapshotTableFinished(users)])
            #expect(try await destination.flush() == nil)
            #expect(try rows(path, "public.users", columns: "count(*), sum(name LIKE 'again%')") == [[.integer(250), .integer(50)]])

            // A column is added upstream.
            let newUsers = TableSchema(relationID: users.relationID, schema: "public", name: "users",
                                       columns: users.columns + [.init(name: "email", typeOID: TypeOID.varchar)])
            try await destination.write([.schemaChange(SchemaChange(old: users, new: newUsers))]
                + transactionEvents(5, [.insert(table: newUsers, row: user(300, "new") + [.text("new@example.com")]),
                                        .update(table: newUsers, old: nil, oldIsKeyOnly: false, row: user(1, "u1") + [.text("one@example.com")])]))
            #expect(try await destination.flush() == transaction(5).end)
            #expect(try rows(path, "public.users", columns: "id, email", order: "id") .filter { $0[1] != .null } == [
                [.integer(1), .text("one@example.com")], [.integer(300), .text("new@example.com")],
            ])
            let db = try SQLiteConnection(path: path, readOnly: true)
            #expect(try db.query("SELECT type FROM pragma_table_info('public.users') WHERE name = 'email'") == [[.text("TEXT")]])
            try await destination.close()
        }
    }

    @Test func schemaChangesRenameDropAndRekey() async throws {
        try await withTemporaryDirectory { dir in
            let path = dir + "/replica.db"
            let v1 = TableSchema(relationID: 9, schema: "s", name: "t", columns: [
                .init(name: "id", typeOID: TypeOID.int4, isKey: true),
                .init(name: "a", typeOID: TypeOID.text),
                .init(name: "b", typeOID: TypeOID.int4),
            ])
            let destination = SQLiteDestination(path: path, pipeline: "p")
            _ = try await destination.open()
            try await destination.write(transactionEvents(1, [
                .insert(table: v1, row: [.int32(1), .text("x"), .int32(10)]),
                .insert(table: v1, row: [.int32(2), .text("y"), .int32(20)]),
            ]))
            // Column a renamed to c; b dropped.
            let v2 = TableSchema(relationID: 9, schema: "s", name: "t", columns: [
                .init(name: "id", typeOID: TypeOID.int4, isKey: true),
                .init(name: "c", typeOID: TypeOID.text),
            ])
            let rename = SchemaChange(old: v1, new: v2)
            #expect(rename.differences == [.columnRenamed(from: "a", to: "c"), .columnDropped("b")])
            try await destination.write([.schemaChange(rename)] + transactionEvents(2, [.insert(table: v2, row: [.int32(3), .text("z")])]))
            _ = try await destination.flush()
            #expect(try rows(path, "s.t") == [[.integer(1), .text("x")], [.integer(2), .text("y")], [.integer(3), .text("z")]])

            // The key moves to c (text): the table is rebuilt with the new primary key.
            let v3 = TableSchema(relationID: 9, schema: "s", name: "t", columns: [
                .init(name: "id", typeOID: TypeOID.int4),
                .init(name: "c", typeOID: TypeOID.text, isKey: true),
            ])
            try await destination.write([.schemaChange(SchemaChange(old: v2, new: v3))] + transactionEvents(3, [
                .insert(table: v3, row: [.int32(30), .text("z")]), // upsert on the new key
            ]))
            _ = try await destination.flush()
            #expect(try rows(path, "s.t", order: "c") == [[.integer(1), .text("x")], [.integer(2), .text("y")], [.integer(30), .text("z")]])
            let db = try SQLiteConnection(path: path, readOnly: true)
            #expect(try db.query("SELECT name FROM pragma_table_info('s.t') WHERE pk > 0") == [[.text("c")]])

            // Renamed table.
            let v4 = TableSchema(relationID: 9, schema: "s", name: "u", columns: v3.columns)
            try await destination.write([.schemaChange(SchemaChange(old: v3, new: v4))] + transactionEvents(4, [
                .delete(table: v4, old: [.null, .text("x")], oldIsKeyOnly: true),
            ]))
            _ = try await destination.flush()
            #expect(try rows(path, "s.u", order: "c") == [[.integer(2), .text("y")], [.integer(30), .text("z")]])
            #expect(try db.query("SELECT count(*) FROM sqlite_master WHERE name = 's.t'") == [[.integer(0)]])
            try await destination.close()
        }
    }

    @Test func reopeningAfterAnUpstreamChangeReconcilesTheTable() async throws {
        try await withTemporaryDirectory { dir in
            let path = dir + "/replica.db"
            let users = usersTable()
            do {
                let destination = SQLiteDestination(path: path, pipeline: "p")
                _ = try await destination.open()
                try await destination.write(transactionEvents(1, [.insert(table: users, row: user(1, "ada"))]))
                _ = try await destination.flush()
                try await destination.close()
            }
            // Ferry restarts and first sees the table with one more column (no schemaChange event).
            let wider = TableSchema(relationID: users.relationID, schema: "public", name: "users",
                                    columns: users.columns + [.init(name: "age", typeOID: TypeOID.int2)])
            let destination = SQLiteDestination(path: path, pipeline: "p")
            _ = try await destination.open()
            try await destination.write(transactionEvents(2, [.insert(table: wider, row: user(2, "bob") + [.int16(40)])]))
            _ = try await destination.flush()
            #expect(try rows(path, "public.users", columns: "id, age") == [[.integer(1), .null], [.integer(2), .integer(40)]])
            try await destination.close()
        }
    }

    @Test func failedWriteRollsBackToTheDurablePosition() async throws {
        try await withTemporaryDirectory { dir in
            let path = dir + "/replica.db"
            let users = usersTable()
            let destination = SQLiteDestination(path: path, pipeline: "p")
            _ = try await destination.open()
            try await destination.write(transactionEvents(1, [.insert(table: users, row: user(1, "ada"))]))
            _ = try await destination.flush()
            // Transaction 2 is applied but not flushed; transaction 3 carries a malformed row.
            await #expect(throws: SQLiteError.self) {
                try await destination.write(transactionEvents(2, [.insert(table: users, row: user(2, "bob"))])
                    + transactionEvents(3, [.insert(table: users, row: [.int32(3)])]))
            }
            #expect(try await destination.flush() == transaction(1).end)
            // Delivered again from the durable position.
            try await destination.write(transactionEvents(2, [.insert(table: users, row: user(2, "bob"))]))
            #expect(try await destination.flush() == transaction(2).end)
            #expect(try rows(path, "public.users", columns: "id") == [[.integer(1)], [.integer(2)]])
            try await destination.close()
        }
    }

    @Test func manyRowsPerformance() async throws {
        try await withTemporaryDirectory { dir in
            let path = dir + "/replica.db"
            let users = usersTable()
            let destination = SQLiteDestination(path: path, pipeline: "p")
            _ = try await destination.open()
            let count = 100_000
            let clock = ContinuousClock()
            let started = clock.now
            for batch in 0..<(count / 10_000) {
                let base = batch * 10_000
                try await destination.write(transactionEvents(UInt64(batch + 1), (0..<10_000).map {
                    .insert(table: users, row: user(Int32(base + $0), "user \(base + $0)", bio: .text("some text")))
                }))
            }
            _ = try await destination.flush()
            let elapsed = clock.now - started
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            print("SQLiteDestination: \(count) inserts in \(elapsed) (\(Int(Double(count) / seconds)) rows/s, this build)")
            #expect(try rows(path, "public.users", columns: "count(*)") == [[.integer(Int64(count))]])
            try await destination.close()
        }
    }
}

@Suite struct SQLiteDestinationPostgresTests {
    /// Values as a real PostgreSQL prints them, decoded by FerryCore, land as the type mapping says.
    @Test func valuesFromPostgreSQL() async throws {
        let printed = try await withTestDatabase(.trust) { db in
            try await db.psql("""
                SET TimeZone = 'UTC'; SET DateStyle = 'ISO';
                SELECT 7::int8, true, 1.1::float4, 'NaN'::float8, 12.50::numeric, '\\x00ff'::bytea,
                       '2024-02-29 13:45:00.5+00'::timestamptz, '2024-02-29'::date, '{"b": 1, "a": [1, 2]}'::jsonb,
                       ARRAY[1, NULL, 3]::int4[], '192.168.0.1/24'::inet
                """)
        }
        let oids: [UInt32] = [TypeOID.int8, TypeOID.bool, TypeOID.float4, TypeOID.float8, TypeOID.numeric, TypeOID.bytea,
                              TypeOID.timestamptz, TypeOID.date, TypeOID.jsonb, 1007, TypeOID.inet]
        let fields = printed.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
        try #require(fields.count == oids.count, "psql printed \(printed)")
        let decoder = ValueDecoder()
        let row = try zip(oids, fields).map { try decoder.decode(typeOID: $0, text: $1) }
        let table = TableSchema(relationID: 1, schema: "public", name: "pg", columns: oids.enumerated().map {
            .init(name: "c\($0.offset)", typeOID: $0.element, isKey: $0.offset == 0)
        })
        try await withTemporaryDirectory { dir in
            let path = dir + "/replica.db"
            let destination = SQLiteDestination(path: path, pipeline: "p")
            _ = try await destination.open()
            try await destination.write([.snapshotTableStarted(table), .snapshotRow(table: table, row: row), .snapshotTableFinished(table)])
            _ = try await destination.flush()
            try await destination.close()
            #expect(try rows(path, "public.pg") == [[
                .integer(7), .integer(1), .real(1.1), .text("NaN"), .text("12.50"), .blob([0, 0xFF]),
                .text("2024-02-29 13:45:00.5+00:00"), .text("2024-02-29"), .text(#"{"a": [1, 2], "b": 1}"#),
                .text("{1,NULL,3}"), .text("192.168.0.1/24"),
            ]])
        }
    }
}
