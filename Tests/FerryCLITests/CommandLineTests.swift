import ArgumentParser
import FerryTestSupport
import PostgresWire
import FerryCore
import FerrySQLite
import Foundation
import Testing
@testable import FerryCLI

@Suite struct CommandLineTests {
    @Test func helpListsTheFiveCommands() {
        let help = Ferry.helpMessage()
        for command in ["run", "check", "status", "slot", "demo"] {
            #expect(help.contains("\n  \(command) "), "`ferry --help` should list `\(command)`:\n\(help)")
        }
    }

    @Test(arguments: [["check"], ["status"], ["slot", "list"], ["slot", "drop"], ["demo"]] as [[String]])
    func unfinishedCommandsSaySoAndFail(_ arguments: [String]) async throws {
        var command = try Ferry.parseAsRoot(arguments)
        do {
            if var async = command as? any AsyncParsableCommand {
                try await async.run()
            } else {
                try command.run()
            }
            Issue.record("`ferry \(arguments.joined(separator: " "))` succeeded but is not implemented")
        } catch let error as NotYetAvailable {
            #expect(error.description.contains("not yet available"))
            #expect(error.command == "ferry " + arguments.joined(separator: " "))
            #expect(Ferry.exitCode(for: error) != .success)
        }
    }
}

@Suite struct SlotConsumeTests {
    @Test func drainsASlotToTheGivenPositionAndConfirmsIt() async throws {
        try await withTestDatabase(.scram, prefix: "consume") { database in
            try await database.psql("""
                CREATE TABLE t (id int PRIMARY KEY, v text);
                CREATE PUBLICATION pub FOR TABLE t;
                """)
            try await database.psql("SELECT pg_create_logical_replication_slot('drain', 'pgoutput')")
            try await database.psql("INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 5000) g")
            try await database.psql("UPDATE t SET v = 'x' WHERE id <= 10")
            let end = try #require(LSN(try await database.psql("SELECT pg_current_wal_lsn()")))
            let command = try Ferry.parseAsRoot([
                "slot", "consume", "--source", database.url, "--slot", "drain", "--publication", "pub",
                "--until-lsn", end.description, "--status-interval", "1",
            ])
            guard var consume = command as? any AsyncParsableCommand else {
                Issue.record("slot consume is not an async command"); return
            }
            try await consume.run()
            let confirmed = try #require(LSN(try await database.psql(
                "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'drain'")))
            #expect(confirmed >= end)
            try await eventually("the walsender to let go of the slot") {
                try await database.psql("SELECT active FROM pg_replication_slots WHERE slot_name = 'drain'") == "f"
            }
        }
    }

    @Test func rejectsAMalformedStopPosition() {
        #expect(throws: (any Error).self) {
            _ = try Ferry.parseAsRoot(["slot", "consume", "--source", "postgres://x@localhost/db", "--slot", "s",
                                       "--publication", "p", "--until-lsn", "nonsense"])
        }
    }
}

@Suite struct RunCommandTests {
    /// Runs `ferry` with arguments in-process, as the binary would.
    func ferry(_ arguments: [String]) async throws {
        let command = try Ferry.parseAsRoot(arguments)
        guard var run = command as? any AsyncParsableCommand else {
            Issue.record("\(arguments.first ?? "") is not an async command"); return
        }
        try await run.run()
    }

    @Test func onceStreamsIntoSQLiteAndJSONLinesAndResumes() async throws {
        try await withTestDatabase(.scram, prefix: "run") { database in
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ferry-run-\(UUID().uuidString)").path
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: directory) }
            try await database.psql("CREATE TABLE orders (id int PRIMARY KEY, item text, qty int)")
            let arguments = [
                "run", "--source", database.url, "--tables", "public.orders", "--name", database.name,
                "--snapshot", "never", "--once", "--state", directory + "/state.db",
                "--to", "sqlite:" + directory + "/replica.db", "--to", "jsonl:" + directory + "/changes.jsonl",
                "--log-level", "warning",
            ]
            try await ferry(arguments)  // creates the publication and the slot
            try await database.psql("INSERT INTO orders VALUES (1, 'apple', 3), (2, 'pear', 1)")
            try await database.psql("UPDATE orders SET qty = 5 WHERE id = 1")
            try await database.psql("DELETE FROM orders WHERE id = 2")
            try await ferry(arguments)
            try await database.psql("INSERT INTO orders VALUES (3, 'fig', 7)")
            try await ferry(arguments)

            let replica = try SQLiteConnection(path: directory + "/replica.db", readOnly: true)
            let rows = try replica.query("SELECT id, item, qty FROM \"public.orders\" ORDER BY id")
            replica.close()
            #expect(rows == [[.integer(1), .text("apple"), .integer(5)], [.integer(3), .text("fig"), .integer(7)]])
            let lines = try String(contentsOfFile: directory + "/changes.jsonl", encoding: .utf8).split(separator: "\n")
            let ops = try lines.map { line -> String in
                let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
                return object?["op"] as? String ?? "?"
            }
            #expect(ops == ["c", "c", "u", "d", "c"])  // each change once: nothing delivered twice
            let slot = try await database.psql("SELECT active FROM pg_replication_slots WHERE slot_name = 'ferry_\(database.name)'")
            #expect(slot == "f")
        }
    }

    @Test func badArgumentsNameTheProblem() async throws {
        #expect(throws: (any Error).self) { try Ferry.parseAsRoot(["run", "--source", "x", "--snapshot", "sometimes"]) }
        do {
            try await ferry(["run", "--source", "postgres://u@localhost/db", "--tables", "orders", "--to", "kafka://x:9092"])
            Issue.record("an unqualified table and an unavailable destination were accepted")
        } catch let error as FerryError {
            #expect(error.description.contains("kafka") || error.description.contains("schema-qualified"))
        }
    }
}
