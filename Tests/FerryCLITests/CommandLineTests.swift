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
}

@Suite struct ExecutableTests {
    /// The binary itself: --help and --version exit 0 (they go through ArgumentParser, not
    /// through the redacting error path).
    @Test func helpAndVersionExitZero() async throws {
        let executable = try FerryExecutable.path()
        let help = try await offCooperativePool { try Subprocess.run(executable, ["--help"], check: false) }
        #expect(help.status == 0, "\(help.output)")
        #expect(help.output.contains("USAGE: ferry <subcommand>"), "\(help.output)")
        let version = try await offCooperativePool { try Subprocess.run(executable, ["--version"], check: false) }
        #expect(version.status == 0)
        #expect(version.output.trimmingCharacters(in: .whitespacesAndNewlines) == FerryVersion.current)
        let unknown = try await offCooperativePool { try Subprocess.run(executable, ["frobnicate"], check: false) }
        #expect(unknown.status != 0)
        #expect(unknown.output.contains("Unexpected argument 'frobnicate'"), "\(unknown.output)")
    }
}

@Suite struct CheckCommandTests {
    @Test func checkAgainstAServerWithoutLogicalWALPrintsTheFixAndFails() async throws {
        try await withTestDatabase(.walLevelReplica, prefix: "checkcli") { database in
            let executable = try FerryExecutable.path()
            let result = try await offCooperativePool {
                try Subprocess.run(executable, ["check", "--source", database.url], check: false)
            }
            #expect(result.status == 2, "\(result.output)")
            #expect(result.output.contains("ERROR   wal_level: wal_level = replica"), "\(result.output)")
            #expect(result.output.contains("fix: self-hosted: ALTER SYSTEM SET wal_level = logical"), "\(result.output)")
            #expect(result.output.contains("result: not ready"))

            let json = try await offCooperativePool {
                try Subprocess.run(executable, ["check", "--source", database.url, "--json"], check: false)
            }
            #expect(json.status == 2)
            let decoded = try JSONDecoder().decode(PreflightReport.self, from: Data(json.output.utf8))
            #expect(decoded.findings("wal_level").first?.severity == .error)
        }
    }

    @Test func slotListAndDropFromTheCommandLine() async throws {
        try await withTestDatabase(.trust, prefix: "slotcli") { database in
            let slot = "cli_\(database.name)"
            try await database.psql("SELECT pg_create_logical_replication_slot('\(slot)', 'pgoutput')")
            let executable = try FerryExecutable.path()
            let list = try await offCooperativePool { try Subprocess.run(executable, ["slot", "list", "--source", database.url]) }
            #expect(list.output.contains("SLOT"))
            #expect(list.output.split(separator: "\n").contains { $0.hasPrefix(slot + " ") && $0.contains("pgoutput") && $0.contains("reserved") },
                    "\(list.output)")
            let drop = try await offCooperativePool { try Subprocess.run(executable, ["slot", "drop", slot, "--source", database.url]) }
            #expect(drop.output.contains("dropped replication slot \(slot)"))
            #expect(try await database.psql("SELECT count(*) FROM pg_replication_slots WHERE slot_name = '\(slot)'") == "0")
            let again = try await offCooperativePool {
                try Subprocess.run(executable, ["slot", "drop", slot, "--source", database.url], check: false)
            }
            #expect(again.status != 0)
            #expect(again.output.contains("does not exist"), "\(again.output)")
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
                "--log-level", "warning", "--admin", "off",
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
            try await ferry(["run", "--source", "postgres://u@localhost/db", "--tables", "orders", "--to", "nats://x:4222"])
            Issue.record("an unqualified table and an unavailable destination were accepted")
        } catch let error as FerryError {
            #expect(error.description.contains("nats") || error.description.contains("schema-qualified"))
        }
    }
}

@Suite struct SnapshotAndStreamTests {
    func ferry(_ arguments: [String]) async throws {
        let command = try Ferry.parseAsRoot(arguments)
        guard var run = command as? any AsyncParsableCommand else { Issue.record("not async"); return }
        try await run.run()
    }

    @Test func snapshotUnderConcurrentWritesThenCatchUpEqualsTheSource() async throws {
        try await withTestDatabase(.trust, prefix: "snap") { database in
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ferry-snap-\(UUID().uuidString)").path
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: directory) }
            try await database.psql("""
                CREATE TABLE items (id int PRIMARY KEY, v int NOT NULL, t text);
                INSERT INTO items SELECT g, g % 97, md5(g::text) FROM generate_series(1, 30000) g;
                CREATE TABLE tags (id bigserial PRIMARY KEY, item int, label text);
                INSERT INTO tags (item, label) SELECT g, 'tag ' || g FROM generate_series(1, 5000) g;
                ANALYZE;
                """)
            let arguments = [
                "run", "--source", database.url, "--tables", "public.*", "--name", database.name,
                "--snapshot-parallelism", "3", "--once", "--state", directory + "/state.db",
                "--to", "sqlite:" + directory + "/replica.db", "--log-level", "warning", "--admin", "off",
            ]
            // Writers change rows while the snapshot copies them.
            async let writes: Void = {
                for round in 0..<25 {
                    try await database.psql("""
                        UPDATE items SET v = v + 1, t = 'r\(round)' WHERE id % 50 = \(round);
                        DELETE FROM items WHERE id % 997 = \(round);
                        INSERT INTO items SELECT 100000 + \(round) * 10 + g, \(round), 'new' FROM generate_series(1, 10) g;
                        INSERT INTO tags (item, label) VALUES (\(round), 'late');
                        """)
                }
            }()
            try await ferry(arguments)
            try await writes
            try await ferry(arguments)  // catch up with everything written meanwhile

            let replica = try SQLiteConnection(path: directory + "/replica.db", readOnly: true)
            defer { replica.close() }
            for (table, columns) in [("items", "id, v, t"), ("tags", "id, item, label")] {
                let source = try await database.psql("SELECT \(columns) FROM \(table) ORDER BY id")
                    .split(separator: "\n").map(String.init)
                let copied = try replica.query("SELECT \(columns) FROM \"public.\(table)\" ORDER BY id").map { row in
                    row.map { value -> String in
                        switch value {
                        case .integer(let n): return String(n)
                        case .text(let s): return s
                        case .null: return ""
                        default: return "\(value)"
                        }
                    }.joined(separator: "|")
                }
                #expect(copied.count == source.count, "\(table): \(copied.count) rows in the replica, \(source.count) in the source")
                #expect(copied == source, "\(table) differs from the source")
            }
        }
    }

    /// The same into a Postgres target, with a pgbench-like OLTP load (several writers, many small
    /// transactions) while the snapshot runs and then while it streams.
    @Test func snapshotUnderOLTPLoadIntoPostgresThenStreamingEqualsTheSource() async throws {
        try await withTestDatabase(.trust, prefix: "snappg") { database in
            try await withTestDatabase(.trust, prefix: "snappgdst") { target in
                let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ferry-snappg-\(UUID().uuidString)").path
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                defer { try? FileManager.default.removeItem(atPath: directory) }
                try await database.psql("""
                    CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL, note text);
                    INSERT INTO accounts SELECT g, 0, md5(g::text) FROM generate_series(1, 40000) g;
                    CREATE TABLE history (id bigserial PRIMARY KEY, account int, delta int, at timestamptz DEFAULT now());
                    ANALYZE;
                    """)
                let arguments = [
                    "run", "--source", database.url, "--tables", "public.*", "--name", database.name,
                    "--snapshot-parallelism", "3", "--once", "--state", directory + "/state.db",
                    "--to", target.url, "--log-level", "warning", "--admin", "off",
                ]
                // Four writers, each a stream of small transfer transactions.
                func writer(_ number: Int) async throws {
                    for round in 0..<30 {
                        let a = (number * 7919 + round * 104_729) % 40000 + 1, b = (a * 31) % 40000 + 1
                        try await database.psql("""
                            BEGIN;
                            UPDATE accounts SET balance = balance - \(round) WHERE id = \(a);
                            UPDATE accounts SET balance = balance + \(round) WHERE id = \(b);
                            INSERT INTO history (account, delta) VALUES (\(a), -\(round)), (\(b), \(round));
                            COMMIT;
                            """)
                    }
                }
                async let w1: Void = writer(1)
                async let w2: Void = writer(2)
                async let w3: Void = writer(3)
                async let w4: Void = writer(4)
                try await ferry(arguments)
                _ = try await (w1, w2, w3, w4)
                try await ferry(arguments)  // catch up with everything written meanwhile
                for (table, columns) in [("accounts", "id, balance, note"), ("history", "id, account, delta, at")] {
                    let source = try await database.psql("SELECT \(columns) FROM \(table) ORDER BY id")
                    let copied = try await target.psql("SELECT \(columns) FROM \(table) ORDER BY id")
                    #expect(copied == source, "\(table) differs: \(copied.split(separator: "\n").count) rows in the target, \(source.split(separator: "\n").count) in the source")
                }
                #expect(try await target.psql("SELECT sum(balance) FROM accounts") == "0")
                #expect(try await target.psql("SELECT count(*) FROM history") == "240")
            }
        }
    }
}
