import FerryCore
import FerryTestSupport
import Foundation
import PostgresWire
import Testing
@testable import FerryPostgres

/// The Postgres destination's small flushes: runs on tables of their own and the position go
/// as one statement that commits by itself (one round trip), driven here event by event so
/// that what one flush holds is known.
@Suite struct PostgresOneStatementTests {
    static let a = TableSchema(relationID: 1, schema: "public", name: "a", columns: [
        .init(name: "id", typeOID: TypeOID.int4, isKey: true), .init(name: "v", typeOID: TypeOID.text),
    ])
    static let b = TableSchema(relationID: 2, schema: "public", name: "b", columns: [
        .init(name: "id", typeOID: TypeOID.int4, isKey: true), .init(name: "n", typeOID: TypeOID.int4),
    ])
    static let c = TableSchema(relationID: 3, schema: "public", name: "c", columns: [
        .init(name: "id", typeOID: TypeOID.int4, isKey: true),
    ])

    /// Transaction `n`: its info and the end position a destination reports once it is durable.
    static func transaction(_ n: UInt64) -> (info: TransactionInfo, end: LSN) {
        (TransactionInfo(xid: UInt32(n), commitLSN: LSN(0x1000 + n * 0x100), commitTime: PostgresTimestamp(rawValue: Int64(n))),
         LSN(0x1000 + n * 0x100 + 0x10))
    }

    static func events(_ n: UInt64, _ changes: [Change]) -> [PipelineEvent] {
        let (info, end) = transaction(n)
        return [.begin(info)] + changes.enumerated().map { .change($0.element, lsn: LSN(0x1000 + n * 0x100 + UInt64($0.offset))) }
            + [.commit(info, endLSN: end)]
    }

    static func storedPosition(_ target: TestDatabase) async throws -> String {
        try await target.psql("SELECT lsn FROM ferry.positions WHERE pipeline = 'p'")
    }

    @Test func smallFlushesCommitInOneStatementAndStillCountConflicts() async throws {
        try await withTestDatabase(.trust, prefix: "pgdst") { target in
            try await target.psql("""
                CREATE TABLE a (id int PRIMARY KEY, v text); CREATE TABLE b (id int PRIMARY KEY, n int); CREATE TABLE c (id int PRIMARY KEY);
                INSERT INTO a VALUES (1, 'there before');
                """)
            let destination = try PostgresDestination(url: target.url, pipeline: "p", logger: testLogger())
            #expect(try await destination.open().durablePosition == nil)

            // The first flush meets the tables (described inside a transaction): the usual path.
            try await destination.write(Self.events(1, [
                .insert(table: Self.a, row: [.int32(2), .text("x")]),
                .insert(table: Self.b, row: [.int32(1), .int32(10)]),
                .insert(table: Self.c, row: [.int32(1)]),
            ]))
            #expect(try await destination.flush() == Self.transaction(1).end)
            #expect(await destination.oneStatementCommits == 0)

            // Three tables, one run each, three conflicts: one statement, conflicts counted from its rows.
            try await destination.write(Self.events(2, [
                .insert(table: Self.a, row: [.int32(1), .text("y")]),
                .update(table: Self.b, old: nil, oldIsKeyOnly: false, row: [.int32(5), .int32(50)]),
                .delete(table: Self.c, old: [.int32(9)], oldIsKeyOnly: true),
            ]))
            #expect(try await destination.flush() == Self.transaction(2).end)
            #expect(await destination.oneStatementCommits == 1)
            let conflicts = await destination.conflicts
            #expect(conflicts == [.insertExists: 1, .updateMissing: 1, .deleteMissing: 1])
            #expect(try await target.psql("SELECT id, v FROM a ORDER BY id") == "1|y\n2|x")
            #expect(try await target.psql("SELECT id, n FROM b ORDER BY id") == "1|10\n5|50")
            #expect(try await target.psql("SELECT id FROM c ORDER BY id") == "1")
            #expect(try await Self.storedPosition(target) == Self.transaction(2).end.description)

            // Two transactions in one flush, a table twice (a delete run, then an upsert run of
            // the same key): one statement could not order them, so the usual path takes it.
            try await destination.write(Self.events(3, [.delete(table: Self.a, old: [.int32(2), .null], oldIsKeyOnly: true)])
                                        + Self.events(4, [.insert(table: Self.a, row: [.int32(2), .text("z")])]))
            #expect(try await destination.flush() == Self.transaction(4).end)
            #expect(await destination.oneStatementCommits == 1)
            #expect(try await target.psql("SELECT id, v FROM a ORDER BY id") == "1|y\n2|z")
            #expect(try await Self.storedPosition(target) == Self.transaction(4).end.description)

            // A transaction with nothing for the target is durable at once (nothing is open),
            // without a round trip: the stored position stays, and moves with the next change.
            try await destination.write(Self.events(5, []))
            #expect(try await destination.flush() == Self.transaction(5).end)
            #expect(await destination.oneStatementCommits == 1)
            #expect(try await Self.storedPosition(target) == Self.transaction(4).end.description)

            // The same statements again (prepared once on this connection), many rows of one table.
            for n in UInt64(6)...8 {
                try await destination.write(Self.events(n, (0..<50).map { .insert(table: Self.b, row: [.int32(Int32(n * 100) + $0), .int32($0)]) }))
                #expect(try await destination.flush() == Self.transaction(n).end)
            }
            #expect(await destination.oneStatementCommits == 4)
            #expect(try await target.psql("SELECT count(*), sum(n) FROM b") == "152|3735")
            try await destination.close()

            // Exactly once: a new instance resumes at the stored position and skips what it has.
            let again = try PostgresDestination(url: target.url, pipeline: "p", logger: testLogger())
            #expect(try await again.open().durablePosition == Self.transaction(8).end)
            try await again.write(Self.events(8, [.insert(table: Self.c, row: [.int32(77)])]))
            #expect(try await again.flush() == Self.transaction(8).end)
            #expect(try await target.psql("SELECT count(*) FROM c") == "1", "a transaction at the stored position is not applied again")
            try await again.close()
        }
    }

    /// The one-statement commit runs on a connection of its own (Ferry's wire client): losing
    /// it is a retryable error after which the stored position is read again, and a value the
    /// target refuses is reported with its SQLSTATE, nothing of the transaction committed.
    @Test func theCommitConnectionsLossAndRefusalsAreHandled() async throws {
        try await withTestDatabase(.trust, prefix: "pgdst") { target in
            try await target.psql("CREATE TABLE a (id int PRIMARY KEY, v text CHECK (v <> 'refused')); CREATE TABLE b (id int PRIMARY KEY, n int)")
            let destination = try PostgresDestination(url: target.url, pipeline: "p", logger: testLogger())
            _ = try await destination.open()
            try await destination.write(Self.events(1, [.insert(table: Self.a, row: [.int32(1), .text("x")])]))
            #expect(try await destination.flush() == Self.transaction(1).end)
            try await destination.write(Self.events(2, [.insert(table: Self.a, row: [.int32(2), .text("y")])]))
            #expect(try await destination.flush() == Self.transaction(2).end)
            #expect(await destination.oneStatementCommits == 1)

            let commitBackend = """
                SELECT pid FROM pg_stat_activity
                WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE 'WITH ferry_position%'
                """
            // The commit connection's backend ends between two flushes (an idle session timed
            // out, say): nothing was in flight, so the next flush opens a new one and goes on.
            let first = try await target.psql(commitBackend)
            #expect(try await target.psql("SELECT pg_terminate_backend(\(first))") == "t")
            try await eventually("the backend to exit") { try await target.psql(commitBackend).isEmpty }
            try await Task.sleep(for: .milliseconds(100))  // its close reaches Ferry's idle event loop
            try await destination.write(Self.events(3, [.insert(table: Self.a, row: [.int32(3), .text("z")])]))
            #expect(try await destination.flush() == Self.transaction(3).end)
            #expect(await destination.oneStatementCommits == 2)
            let second = try await target.psql(commitBackend)
            #expect(!second.isEmpty && second != first, "a new commit connection")

            // It ends while its statement runs (a trigger holds the statement): whether it
            // committed is unknown, so the flush fails as retryable, and the position is read
            // again from the target before the replay.
            try await target.psql("""
                CREATE SEQUENCE slept;
                CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN IF NEW.v = 'slow' AND nextval('slept') = 1 THEN PERFORM pg_sleep(5); END IF; RETURN NEW; END $$;
                CREATE TRIGGER slow BEFORE INSERT ON a FOR EACH ROW EXECUTE FUNCTION slow();
                """)
            try await destination.write(Self.events(4, [.insert(table: Self.a, row: [.int32(4), .text("slow")])]))
            let flushing = Task { try await destination.flush() }
            try await eventually("the statement to run") {
                try await target.psql(commitBackend + " AND state = 'active' AND wait_event = 'PgSleep'") != ""
            }
            _ = try await target.psql("SELECT pg_terminate_backend(pid) FROM (\(commitBackend)) b")
            let lost = await #expect(throws: FerryError.self) { _ = try await flushing.value }
            #expect(lost?.kind == .destination, "a lost connection is retryable: \(String(describing: lost))")
            // The pipeline replays from the durable position: the same transaction again.
            try await destination.write(Self.events(4, [.insert(table: Self.a, row: [.int32(4), .text("slow")])]))
            #expect(try await destination.flush() == Self.transaction(4).end)
            #expect(try await target.psql("SELECT string_agg(id || v, ',' ORDER BY id) FROM a") == "1x,2y,3z,4slow")
            #expect(try await Self.storedPosition(target) == Self.transaction(4).end.description)

            // A value the target refuses, in one statement of two tables (both known since the
            // last reconnection): neither is committed.
            try await destination.write(Self.events(5, [.insert(table: Self.b, row: [.int32(1), .int32(1)])]))
            #expect(try await destination.flush() == Self.transaction(5).end)
            let commitBackends = """
                SELECT count(*) FROM pg_stat_activity
                WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE 'WITH ferry_position%'
                """
            #expect(try await target.psql(commitBackends) == "0", "the commit connection went with the lost one")
            try await destination.write(Self.events(6, [
                .insert(table: Self.b, row: [.int32(2), .int32(2)]), .insert(table: Self.a, row: [.int32(7), .text("refused")]),
            ]))
            let refused = await #expect(throws: FerryError.self) { _ = try await destination.flush() }
            #expect(refused?.kind == .destinationRejected)
            #expect(refused?.message.contains("SQLSTATE 23514") == true, "\(String(describing: refused))")
            #expect(try await target.psql(commitBackends) == "1", "the refused statement ran on the commit connection")
            #expect(try await target.psql("SELECT count(*) FROM b") == "1")
            #expect(try await Self.storedPosition(target) == Self.transaction(5).end.description)
            // The same refusal on the usual path (tables described again after the failure; the
            // statement is prepared through postgres-nio's older API, which has errors of its own).
            try await destination.write(Self.events(6, [.insert(table: Self.a, row: [.int32(7), .text("refused")])]))
            let again = await #expect(throws: FerryError.self) { _ = try await destination.flush() }
            #expect(again?.kind == .destinationRejected)
            #expect(again?.message.contains("violates check constraint") == true && again?.message.contains("SQLSTATE 23514") == true,
                    "\(String(describing: again))")
            try await destination.close()
        }
    }

    /// A user the target allows one connection: small transactions take the usual path on it
    /// (the commit connection cannot be opened), and nothing is lost.
    @Test func withoutASecondConnectionSmallFlushesTakeTheUsualPath() async throws {
        try await withTestDatabase(.trust, prefix: "pgdst") { target in
            let role = "one_\(target.name)"
            try await target.psql("""
                CREATE ROLE \(role) LOGIN CONNECTION LIMIT 1; GRANT CREATE ON DATABASE \(target.name) TO \(role);
                CREATE TABLE a (id int PRIMARY KEY, v text); ALTER TABLE a OWNER TO \(role);
                """)
            let url = target.server.url(database: target.name, user: role)
            let destination = try PostgresDestination(url: url, pipeline: "p", logger: testLogger())
            _ = try await destination.open()
            for n in UInt64(1)...3 {
                try await destination.write(Self.events(n, [.insert(table: Self.a, row: [.int32(Int32(n)), .text("v\(n)")])]))
                #expect(try await destination.flush() == Self.transaction(n).end)
            }
            #expect(await destination.oneStatementCommits == 0)
            #expect(try await target.psql("SELECT string_agg(id || v, ',' ORDER BY id) FROM a") == "1v1,2v2,3v3")
            #expect(try await Self.storedPosition(target) == Self.transaction(3).end.description)
            try await destination.close()
            try await target.psql("DROP OWNED BY \(role); DROP ROLE \(role)")
        }
    }

    /// Under ferry_conflicts=stop a conflict must be able to roll its transaction back: the
    /// flush takes the usual path, and nothing of the transaction nor its position is committed.
    @Test func theStopPolicyKeepsTheTransactionalPath() async throws {
        try await withTestDatabase(.trust, prefix: "pgdst") { target in
            try await target.psql("CREATE TABLE a (id int PRIMARY KEY, v text); CREATE TABLE b (id int PRIMARY KEY, n int); INSERT INTO a VALUES (1, 'kept')")
            let destination = try PostgresDestination(url: target.url + "&ferry_conflicts=stop", pipeline: "p", logger: testLogger())
            _ = try await destination.open()
            try await destination.write(Self.events(1, [
                .insert(table: Self.a, row: [.int32(2), .text("x")]), .insert(table: Self.b, row: [.int32(1), .int32(1)]),
            ]))
            #expect(try await destination.flush() == Self.transaction(1).end)
            // Under `apply` this flush would be one statement (both tables known, one run each).
            try await destination.write(Self.events(2, [
                .insert(table: Self.b, row: [.int32(2), .int32(2)]),
                .insert(table: Self.a, row: [.int32(1), .text("overwritten?")]),
            ]))
            await #expect(throws: FerryError.self) { _ = try await destination.flush() }
            #expect(await destination.oneStatementCommits == 0)
            #expect(try await target.psql("SELECT v FROM a WHERE id = 1") == "kept")
            #expect(try await target.psql("SELECT count(*) FROM b") == "1")
            #expect(try await Self.storedPosition(target) == Self.transaction(1).end.description)
        }
    }
}
