import FerrySQLite
import FerryTestSupport
import Foundation
import PostgresWire
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `kill -9` of the real `ferry` binary at random points, during the snapshot and while it
/// streams, then a restart: the SQLite replica must equal the source, with no duplicate keys and
/// nothing lost. Random choices come from a seeded generator; every failure names the seed
/// (rerun with `FERRY_CRASH_SEED=<seed>`) and ends with the tail of the last child's output.
@Suite(.serialized) struct CrashRecoveryTests {
    /// Kills during the initial snapshot (several in a row, with writes in between), then a
    /// `--once` run to the end.
    @Test func killDuringTheSnapshotThenRestartEqualsTheSource() async throws {
        let run = try CrashRun(scenario: "snapshot")
        defer { run.finish() }
        try await withTestDatabase(.trust, prefix: "crash_snap") { database in
            run.database = database
            try await Self.killDuringTheSnapshot(run, database)
        }
    }

    /// The same into Postgres: the rows go in undecoded (binary COPY on two loader
    /// connections) into tables created without their primary key; a killed load leaves a
    /// table with rows of a chunk loaded twice and no key, which the next run repairs.
    @Test func killDuringTheSnapshotIntoPostgresThenTheTargetEqualsTheSource() async throws {
        let run = try CrashRun(scenario: "snapshot-postgres")
        defer { run.finish() }
        try await withTestDatabase(.trust, prefix: "crash_snap_pgsrc") { database in
            try await withTestDatabase(.trust, prefix: "crash_snap_pgdst") { target in
                run.database = database
                run.postgresTarget = target
                try await Self.killDuringTheSnapshot(run, database)
                let keys = try await target.psql("""
                    SELECT string_agg(c.relname || ':' || coalesce(obj_description(c.oid, 'pg_class'), 'no comment'), ' ' ORDER BY c.relname)
                    FROM pg_class c JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary
                    WHERE c.relnamespace = 'public'::regnamespace
                    """)
                #expect(keys == "items:no comment tags:no comment wide:no comment", "every table has its primary key and no pending-key comment")
            }
        }
    }

    private static func killDuringTheSnapshot(_ run: CrashRun, _ database: TestDatabase) async throws {
        do {
            try await database.psql("""
                CREATE TABLE items (id int PRIMARY KEY, v int NOT NULL, t text);
                INSERT INTO items SELECT g, g % 97, md5(g::text) FROM generate_series(1, 200000) g;
                CREATE TABLE tags (id int PRIMARY KEY, v int NOT NULL, t text);
                INSERT INTO tags SELECT g, g % 7, 'tag ' || g FROM generate_series(1, 2000) g;
                CREATE TABLE wide (id int PRIMARY KEY, v int NOT NULL, t text);
                INSERT INTO wide SELECT g, g % 13, repeat(md5(g::text), 30) FROM generate_series(1, 5000) g;
                ANALYZE;
                """)
            let streaming = run.arguments(once: false, parallelism: 2)
            let kills = 3
            for round in 0..<kills {
                let delay = Double.random(in: 0.2...2.0, using: &run.random)
                let child = try run.spawn(streaming)
                try await Task.sleep(for: .seconds(delay))
                let status = try await child.kill9()
                let phase = run.snapshotPhase()
                run.note("kill \(round + 1) after \(String(format: "%.2f", delay)) s (status \(status)): \(phase)")
                if status != 128 + SIGKILL {
                    try run.fail("ferry exited on its own (status \(status)) before the kill", child)
                }
                // Change rows between the kills: the resumed snapshot reads them under a fresh
                // snapshot and the stream from the slot's consistent point reconciles them.
                let r = Int.random(in: 0..<1000, using: &run.random)
                try await database.psql("""
                    UPDATE items SET v = v + 1, t = 'k\(round)' WHERE id % 1000 = \(r);
                    DELETE FROM items WHERE id % 4999 = \(r % 4999);
                    INSERT INTO items SELECT 300000 + \(round) * 100 + g, \(round), 'new \(round)' FROM generate_series(1, 50) g;
                    UPDATE wide SET v = v + 1 WHERE id % 500 = \(r % 500);
                    UPDATE tags SET t = 'k\(round)' WHERE id % 100 = \(r % 100);
                    DELETE FROM wide WHERE id = \(r + 1);
                    """)
            }
            try await run.once(timeout: .seconds(120))
            try await run.expectReplicaEqualsSource(tables: [("items", "id, v, t"), ("tags", "id, v, t"), ("wide", "id, v, t")])
            try await run.waitForSlotInactive()
        }
    }

    /// Kills at random moments while `ferry run` streams and a writer keeps committing small
    /// transactions; each kill is followed by a restart. Then the writer stops and a `--once`
    /// run catches up.
    @Test func killWhileStreamingThenRestartEqualsTheSource() async throws {
        let run = try CrashRun(scenario: "streaming")
        defer { run.finish() }
        try await withTestDatabase(.trust, prefix: "crash_stream") { database in
            run.database = database
            try await Self.killWhileStreaming(run, database, kills: Int.random(in: 5...10, using: &run.random))
        }
    }

    /// The same into a Postgres target: ten kills, then the target equals the source with no
    /// duplicates (exactly-once through ferry.positions).
    @Test func killTenTimesWhileStreamingIntoPostgresThenTheTargetEqualsTheSource() async throws {
        let run = try CrashRun(scenario: "streaming-postgres")
        defer { run.finish() }
        try await withTestDatabase(.trust, prefix: "crash_pgsrc") { database in
            try await withTestDatabase(.trust, prefix: "crash_pgdst") { target in
                run.database = database
                run.postgresTarget = target
                try await Self.killWhileStreaming(run, database, kills: 10, streamsTransactions: true)
            }
        }
    }

    /// `streamsTransactions`: the destination takes in-progress transactions, so the writer's
    /// large ones (1,500 rows, past the harness's 64 kB logical_decoding_work_mem) reach it in
    /// blocks while they run, and some kills land inside one.
    private static func killWhileStreaming(_ run: CrashRun, _ database: TestDatabase, kills: Int,
                                           streamsTransactions: Bool = false) async throws {
        do {
            try await database.psql("""
                CREATE TABLE items (id int PRIMARY KEY, v int NOT NULL, t text);
                INSERT INTO items SELECT g, g % 97, md5(g::text) FROM generate_series(1, 5000) g;
                """)
            try await run.once(timeout: .seconds(60))  // the snapshot, then caught up
            try await run.expectReplicaEqualsSource(tables: [("items", "id, v, t")])

            let writes = WriteLog()
            run.writes = writes
            let stop = StopFlag()
            let writerSeed = run.random.next()
            let writer = Task { try await Self.write(database, seed: writerSeed, log: writes, until: stop) }
            do {
                // One run streams longer than the status interval (5 s), so the slot advances
                // while the writer goes on; meanwhile the slot is checked against the replica.
                let longRound = Int.random(in: 0..<kills, using: &run.random)
                let streaming = run.arguments(once: false, parallelism: 2)
                for round in 0..<kills {
                    // Mostly while streaming; sometimes while it is still starting up.
                    let early = round != longRound && Int.random(in: 0..<4, using: &run.random) == 0
                    let child: CrashChild
                    let delay: Double
                    if early {
                        delay = Double.random(in: 0.0...0.3, using: &run.random)
                        child = try run.spawn(streaming)
                    } else {
                        delay = round == longRound ? Double.random(in: 5.5...7.0, using: &run.random)
                            : Double.random(in: 0.05...1.0, using: &run.random)
                        child = try await run.startStreaming(streaming)
                    }
                    if round == longRound {
                        let clock = ContinuousClock(), end = clock.now + .seconds(delay)
                        let first = try await run.confirmedFlush()
                        var samples = 0
                        while clock.now < end {
                            try await run.checkConfirmedNotAheadOfReplica(try await run.confirmedFlush())
                            samples += 1
                            try await Task.sleep(for: .milliseconds(200))
                        }
                        let last = try await run.confirmedFlush()
                        run.note("streamed \(String(format: "%.2f", delay)) s: slot confirmed \(first.map { "\($0)" } ?? "-") → \(last.map { "\($0)" } ?? "-"),"
                                 + " checked against the replica \(samples) times")
                    } else {
                        try await Task.sleep(for: .seconds(delay))
                    }
                    let committed = writes.count
                    let status = try await child.kill9()
                    if status != 128 + SIGKILL {
                        guard early && run.isSlotActiveFailure(child) else {
                            try run.fail("ferry exited on its own (status \(status)) before the kill", child)
                        }
                        run.countSlotActiveRefusal()
                    }
                    let confirmed = try await run.confirmedFlush()
                    run.note("kill \(round + 1) \(early ? "at start-up" : "while streaming"), \(String(format: "%.2f", delay)) s"
                             + " (status \(status)); writer at \(committed) transactions; slot confirmed \(confirmed.map { "\($0)" } ?? "-")"
                             + ", replica at \(await run.replicaPosition().map { "\($0)" } ?? "-")")
                    try await run.checkConfirmedNotAheadOfReplica(confirmed)
                }
            } catch {
                stop.set()
                _ = try? await writer.value
                throw error
            }
            stop.set()
            let transactions = try await writer.value
            run.note("writer committed \(transactions) transactions")
            try await run.once(timeout: .seconds(90))
            try await run.checkConfirmedNotAheadOfReplica(try await run.confirmedFlush())
            try await run.expectReplicaEqualsSource(tables: [("items", "id, v, t")])
            #expect(transactions > 0, "the writer committed nothing (seed \(run.seed))")
            if streamsTransactions {
                #expect(try await run.streamedTransactions() > 0, "no transaction was streamed (seed \(run.seed))")
            }
            try await run.waitForSlotInactive()
        }
    }

    /// Kills right after the slot got its consistent point (while `ferry run` is between
    /// creating the slot and recording it in its state), then restarts: the slot exists but the
    /// state does not know it, so the restart must still copy the tables.
    @Test func killRightAfterTheSlotIsCreatedThenRestartEqualsTheSource() async throws {
        let run = try CrashRun(scenario: "slot-created")
        defer { run.finish() }
        try await withTestDatabase(.trust, prefix: "crash_slot") { database in
            run.database = database
            try await database.psql("""
                CREATE TABLE items (id int PRIMARY KEY, v int NOT NULL, t text);
                INSERT INTO items SELECT g, g % 97, md5(g::text) FROM generate_series(1, 2000) g;
                """)
            let streaming = run.arguments(once: false, parallelism: 2)
            var landed = false
            for attempt in 1...8 where !landed {
                run.removeFiles()
                let child = try run.spawn(streaming)
                let slotQuery = "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = \(sqlLiteral(run.slot))"
                let seen: Bool = try await database.withConnection { monitor in
                    let clock = ContinuousClock(), deadline = clock.now + .seconds(20)
                    while clock.now < deadline {
                        if child.poll() != nil { return false }
                        if try await monitor.scalar(sql: slotQuery) != nil { return true }
                    }
                    return false
                }
                let status = try await child.kill9()
                guard seen else { try run.fail("the slot never got a consistent point (ferry status \(status))", child) }
                try await run.waitForSlotInactive()
                let slotExists = try await database.psql("SELECT count(*) FROM pg_replication_slots WHERE slot_name = \(sqlLiteral(run.slot))") == "1"
                let phase = run.snapshotPhase()
                run.note("attempt \(attempt): killed once the slot had a consistent point; slot \(slotExists ? "kept" : "gone"), \(phase)")
                landed = slotExists && phase.contains("not recorded")
                if !landed && slotExists {
                    try await database.psql("SELECT pg_drop_replication_slot(\(sqlLiteral(run.slot)))")
                }
            }
            guard landed else {
                run.note("no kill landed between the slot's creation and its record in the state; nothing to check")
                return
            }
            try await run.once(timeout: .seconds(60))
            // The start records "creating slot" before creating it, so the restart drops the
            // interrupted slot and takes the snapshot again instead of skipping it.
            try await run.expectReplicaEqualsSource(tables: [("items", "id, v, t")])
            try await run.waitForSlotInactive()
        }
    }

    /// Small transactions of inserts, updates and deletes (now and then a bigger one), each
    /// bracketed by the WAL insert position before and after it, until `stop` is set.
    private static func write(_ database: TestDatabase, seed: UInt64, log: WriteLog, until stop: StopFlag) async throws -> Int {
        try await database.withConnection { connection in
            var random = SplitMix64(seed: seed)
            var nextID = 1_000_000
            var committed = 0
            func anyID(_ random: inout SplitMix64) -> Int {
                Bool.random(using: &random) ? Int.random(in: 1...5000, using: &random)
                    : Int.random(in: 1_000_000...max(1_000_000, nextID), using: &random)
            }
            while !stop.isSet && committed < 50_000 {
                let before = try await connection.scalar(sql: "SELECT pg_current_wal_insert_lsn()::text")
                try await connection.execute(sql: "BEGIN")
                for _ in 0..<Int.random(in: 1...4, using: &random) {
                    let dice = Int.random(in: 0..<100, using: &random)
                    let sql: String
                    if dice < 40 {
                        sql = "INSERT INTO items VALUES (\(nextID), \(dice), 'w\(committed)')"
                        nextID += 1
                    } else if dice < 75 {
                        sql = "UPDATE items SET v = v + 1, t = 'u\(committed)' WHERE id = \(anyID(&random))"
                    } else if dice < 95 {
                        sql = "DELETE FROM items WHERE id = \(anyID(&random))"
                    } else if dice < 98 {
                        sql = "UPDATE items SET v = v + 1, t = 'bulk\(committed)' WHERE id % 50 = \(dice % 50)"
                    } else {
                        sql = "INSERT INTO items SELECT \(nextID) + g, g, 'many\(committed)' FROM generate_series(0, 1499) g"
                        nextID += 1500
                    }
                    try await connection.execute(sql: sql)
                }
                try await connection.execute(sql: "COMMIT")
                let after = try await connection.scalar(sql: "SELECT pg_current_wal_insert_lsn()::text")
                if let before = before.flatMap({ LSN($0) }), let after = after.flatMap({ LSN($0) }) {
                    log.append(before: before, after: after)
                }
                committed += 1
                try await Task.sleep(for: .milliseconds(2))
            }
            return committed
        }
    }
}

// MARK: - One scenario's state

/// A scenario's seed, directory, child processes and notes; builds the failure messages.
private final class CrashRun: @unchecked Sendable {
    let scenario: String
    let seed: UInt64
    var random: SplitMix64
    let directory: String
    let executable: String
    var database: TestDatabase!
    var writes: WriteLog?
    private(set) var children: [CrashChild] = []
    private(set) var notes: [String] = []
    /// Restarts that failed because the killed process's walsender still held the slot.
    private(set) var slotActiveRetries = 0
    private let started = ContinuousClock.now

    init(scenario: String) throws {
        self.scenario = scenario
        if let text = ProcessInfo.processInfo.environment["FERRY_CRASH_SEED"], let seed = UInt64(text) {
            self.seed = seed
        } else {
            self.seed = UInt64.random(in: 0...UInt64.max)
        }
        random = SplitMix64(seed: seed)
        executable = try FerryExecutable.path()
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("ferry-crash-\(scenario)-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        print("CrashRecovery[\(scenario)]: seed \(seed) (rerun with FERRY_CRASH_SEED=\(seed)); files in \(directory)")
    }

    var slot: String { "ferry_" + database.name }
    var replicaPath: String { directory + "/replica.db" }
    /// When set, `ferry run` replicates into this database instead of the SQLite replica.
    var postgresTarget: TestDatabase?
    var statePath: String { directory + "/state.db" }

    func arguments(once: Bool, parallelism: Int) -> [String] {
        var arguments = [
            "run", "--source", database.url, "--tables", "public.*", "--name", database.name,
            "--snapshot-parallelism", "\(parallelism)", "--state", statePath, "--to", postgresTarget?.url ?? "sqlite:" + replicaPath,
            "--log-level", "warning", "--admin", "off",
        ]
        if once { arguments.append("--once") }
        return arguments
    }

    /// Removes the state and the replica (a fresh pipeline on the next run).
    func removeFiles() {
        for path in [statePath, replicaPath] {
            for suffix in ["", "-wal", "-shm", "-journal"] { try? FileManager.default.removeItem(atPath: path + suffix) }
        }
    }

    func spawn(_ arguments: [String]) throws -> CrashChild {
        let output = directory + "/ferry-\(children.count + 1).log"
        let child = try CrashChild(executable: executable, arguments: arguments, outputPath: output)
        children.append(child)
        return child
    }

    func note(_ text: String) {
        let elapsed = ContinuousClock.now - started
        notes.append(String(format: "[%6.2f s] ", Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18) + text)
    }

    /// Kills whatever still runs, prints the notes, removes the directory.
    func finish() {
        for child in children { child.killAndReap() }
        note("done: \(children.count) ferry processes, \(slotActiveRetries) restart(s) refused because the slot was still active")
        print("CrashRecovery[\(scenario)] seed \(seed):\n  " + notes.joined(separator: "\n  "))
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Context for a failure message: the seed, what happened so far, and the child's output.
    func context(_ child: CrashChild? = nil) -> String {
        var text = "seed \(seed) (rerun with FERRY_CRASH_SEED=\(seed))\n" + notes.suffix(20).joined(separator: "\n")
        if let child = child ?? children.last {
            text += "\n--- \(child.commandLine)\n--- last output (\(child.outputPath)):\n" + child.outputTail()
        }
        return text
    }

    func fail(_ what: String, _ child: CrashChild? = nil) throws -> Never {
        throw CrashFailure(description: "\(scenario): \(what)\n" + context(child))
    }

    func countSlotActiveRefusal() {
        slotActiveRetries += 1
        note("ferry run refused: the slot is still active (\(slotActiveRetries))")
    }

    func isSlotActiveFailure(_ child: CrashChild) -> Bool {
        child.outputTail(lines: 60).contains("is active for PID")
    }

    // MARK: Runs

    /// `ferry run --once` to completion; a start refused because the previous walsender still
    /// holds the slot is counted, and retried once the slot is free.
    func once(timeout: Duration) async throws {
        for _ in 0..<5 {
            let child = try spawn(arguments(once: true, parallelism: 2))
            let clock = ContinuousClock(), start = clock.now
            let status: Int32
            do {
                status = try await child.waitForExit(timeout: timeout)
            } catch {
                try fail("ferry run --once did not finish within \(timeout)", child)
            }
            if status == 0 {
                note("ferry run --once finished in \(clock.now - start)")
                return
            }
            guard isSlotActiveFailure(child) else {
                try fail("ferry run --once exited with status \(status)", child)
            }
            countSlotActiveRefusal()
            try await waitForSlotInactive()
        }
        try fail("ferry run --once was refused five times because the slot stayed active")
    }

    /// Starts `ferry run` and returns once its walsender holds the slot; a start refused because
    /// the previous walsender still holds it is counted and retried once the slot is free.
    func startStreaming(_ arguments: [String]) async throws -> CrashChild {
        let previous = try await slotPID()
        for _ in 0..<5 {
            let child = try spawn(arguments)
            enum Outcome: Sendable { case streaming, exited(Int32) }
            let outcome: Outcome
            do {
                outcome = try await eventually("ferry to start streaming", timeout: .seconds(30)) { () async throws -> Outcome? in
                    if let status = child.poll() { return .exited(status) }
                    if let pid = try await self.slotPID(), pid != previous { return .streaming }
                    return nil
                }
            } catch {
                try fail("ferry run did not start streaming: \(error)", child)
            }
            switch outcome {
            case .streaming:
                return child
            case .exited(let status):
                guard isSlotActiveFailure(child) else { try fail("ferry run exited with status \(status) while starting", child) }
                countSlotActiveRefusal()
                try await waitForSlotInactive()
            }
        }
        try fail("ferry run was refused five times because the slot stayed active")
    }

    // MARK: Source and replica

    /// The PID of the walsender holding the slot, nil when none does (or there is no slot).
    func slotPID() async throws -> Int32? {
        let text = try await database.withConnection { connection in
            try await connection.scalar(sql: "SELECT active_pid FROM pg_replication_slots WHERE slot_name = \(sqlLiteral(self.slot))")
        }
        return text.flatMap { Int32($0) }
    }

    func waitForSlotInactive() async throws {
        do {
            try await eventually("the slot \(slot) to become inactive", timeout: .seconds(30)) { try await self.slotPID() == nil }
        } catch {
            try fail("\(error)")
        }
    }

    /// Transactions the server streamed in progress from the slot (pg_stat_replication_slots).
    func streamedTransactions() async throws -> Int {
        let text = try await database.withConnection { connection in
            try await connection.scalar(sql: "SELECT stream_txns FROM pg_stat_replication_slots WHERE slot_name = \(sqlLiteral(self.slot))")
        }
        return text.flatMap { Int($0) } ?? 0
    }

    func confirmedFlush() async throws -> LSN? {
        let text = try await database.withConnection { connection in
            try await connection.scalar(sql: "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = \(sqlLiteral(self.slot))")
        }
        return text.flatMap { LSN($0) }
    }

    /// The replica's durable position (the end of the last transaction it applied).
    func replicaPosition() async -> LSN? {
        if let target = postgresTarget {
            let text = try? await target.psql("SELECT lsn FROM ferry.positions WHERE pipeline = '\(database.name)'")
            return text.flatMap { LSN($0) }
        }
        guard FileManager.default.fileExists(atPath: replicaPath),
              let replica = try? SQLiteConnection(path: replicaPath, readOnly: true) else { return nil }
        defer { replica.close() }
        let rows = try? replica.query("SELECT lsn FROM _ferry_position WHERE pipeline = ?", [.text(database.name)])
        return rows?.first?.first?.text.flatMap { LSN($0) }
    }

    /// Where the snapshot stands according to the state file (after a kill).
    func snapshotPhase() -> String {
        guard FileManager.default.fileExists(atPath: statePath),
              let state = try? SQLiteConnection(path: statePath, readOnly: true) else { return "no state file yet" }
        defer { state.close() }
        let snapshot = (try? state.query("SELECT snapshot FROM pipelines WHERE name = ?", [.text(database.name)]))?.first?.first?.text
        let chunks = (try? state.query("SELECT table_name, count(*) FROM snapshot_chunks WHERE pipeline = ? GROUP BY 1 ORDER BY 1",
                                       [.text(database.name)])) ?? []
        let done = chunks.map { "\($0[0].text ?? "?"): \($0[1].integer ?? 0)" }.joined(separator: ", ")
        return "snapshot \(snapshot ?? "not recorded"), chunks done [\(done)]"
    }

    /// The slot may never be confirmed past a transaction the replica does not have: no writer
    /// transaction may lie entirely after the replica's position and before the slot's.
    func checkConfirmedNotAheadOfReplica(_ confirmed: LSN?) async throws {
        guard let confirmed, let writes, let replica = await replicaPosition() else { return }
        if let lost = writes.firstWithin(after: replica, upTo: confirmed) {
            try fail("the slot is confirmed at \(confirmed) but the replica is at \(replica): a transaction committed between"
                     + " \(lost.before) and \(lost.after) is in neither")
        }
    }

    /// Every table equals the source, row by row in key order, without duplicate keys.
    func expectReplicaEqualsSource(tables: [(name: String, columns: String)]) async throws {
        if let target = postgresTarget {
            for table in tables {
                let source = try await database.psql("SELECT \(table.columns) FROM \(table.name) ORDER BY id")
                let copied = try await target.psql("SELECT \(table.columns) FROM \(table.name) ORDER BY id")
                let duplicates = try await target.psql("SELECT count(*) - count(DISTINCT id) FROM \(table.name)")
                #expect(duplicates == "0", "\(table.name): duplicate keys in the target; \(context())")
                let rows = source.split(separator: "\n").count
                #expect(copied == source, "\(table.name): the target (\(copied.split(separator: "\n").count) rows) differs from the source (\(rows) rows); \(context())")
                if copied == source { note("\(table.name): the Postgres target equals the source (\(rows) rows)") }
            }
            return
        }
        let replica = try SQLiteConnection(path: replicaPath, readOnly: true)
        defer { replica.close() }
        for table in tables {
            let source = try await database.psql("SELECT \(table.columns) FROM \(table.name) ORDER BY id")
                .split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
            let quoted = "\"public.\(table.name)\""
            guard try !replica.query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", [.text("public.\(table.name)")]).isEmpty else {
                Issue.record("\(table.name): the replica has no table public.\(table.name) (\(source.count) rows in the source)\n\(context())")
                continue
            }
            let duplicates = try replica.query("SELECT count(*) - count(DISTINCT id) FROM \(quoted)").first?.first?.integer ?? -1
            #expect(duplicates == 0, "\(table.name): \(duplicates) duplicate keys in the replica; \(context())")
            let copied = try replica.query("SELECT \(table.columns) FROM \(quoted) ORDER BY id").map { row in
                row.map { value -> String in
                    switch value {
                    case .integer(let n): return String(n)
                    case .text(let s): return s
                    case .null: return ""
                    default: return "\(value)"
                    }
                }.joined(separator: "|")
            }
            guard copied != source else {
                note("\(table.name): the replica equals the source (\(source.count) rows)")
                continue
            }
            let sourceIDs = Dictionary(source.map { ($0.prefix(while: { $0 != "|" }), $0) }, uniquingKeysWith: { a, _ in a })
            let copiedIDs = Dictionary(copied.map { ($0.prefix(while: { $0 != "|" }), $0) }, uniquingKeysWith: { a, _ in a })
            let missing = sourceIDs.keys.filter { copiedIDs[$0] == nil }.sorted { Int($0) ?? 0 < Int($1) ?? 0 }
            let extra = copiedIDs.keys.filter { sourceIDs[$0] == nil }.sorted { Int($0) ?? 0 < Int($1) ?? 0 }
            let different = sourceIDs.filter { id, row in copiedIDs[id].map { $0 != row } ?? false }.keys.sorted { Int($0) ?? 0 < Int($1) ?? 0 }
            Issue.record("""
                \(table.name): the replica (\(copied.count) rows) differs from the source (\(source.count) rows): \
                \(missing.count) missing (first ids \(missing.prefix(10).joined(separator: ", "))), \
                \(extra.count) extra (\(extra.prefix(10).joined(separator: ", "))), \
                \(different.count) different (\(different.prefix(5).map { "source \(sourceIDs[$0]!.prefix(60)) replica \(copiedIDs[$0]!.prefix(60))" }.joined(separator: "; ")))
                \(context())
                """)
        }
    }
}

private struct CrashFailure: Error, CustomStringConvertible {
    let description: String
}

// MARK: - The ferry child process

/// Finds the `ferry` executable next to the test binary (`swift build` puts both in the
/// same directory), or at `FERRY_EXECUTABLE`.
/// A `ferry` child process: stdin from /dev/null, stdout and stderr into a file, no other
/// inherited descriptors. Reaped by polling (`waitpid` with `WNOHANG`), so no thread blocks.
private final class CrashChild: @unchecked Sendable {
    let pid: pid_t
    let outputPath: String
    let commandLine: String
    private let lock = NSLock()
    private var status: Int32?

    init(executable: String, arguments: [String], outputPath: String) throws {
        self.outputPath = outputPath
        commandLine = ([executable] + arguments).joined(separator: " ")
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        if let closeFrom = Self.closeFrom { _ = closeFrom(&actions, 3) }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        var defaults = sigset_t()
        sigfillset(&defaults)
        posix_spawnattr_setsigdefault(&attributes, &defaults)

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let envp = ProcessInfo.processInfo.environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { envp.forEach { free($0) } }
        var pid = pid_t()
        let result = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        guard result == 0 else {
            throw CrashFailure(description: "could not start \(executable): \(String(cString: strerror(result)))")
        }
        self.pid = pid
    }

    deinit { killAndReap() }

    /// The exit status once the process ended (128 + signal when killed), nil while it runs.
    func poll() -> Int32? {
        lock.withLock {
            if let status { return status }
            var raw: Int32 = 0
            let result = waitpid(pid, &raw, WNOHANG)
            if result == pid {
                let signal = raw & 0x7F
                status = signal == 0 ? (raw >> 8) & 0xFF : 128 + signal
            } else if result == -1 && errno == ECHILD {
                status = -1
            }
            return status
        }
    }

    func waitForExit(timeout: Duration) async throws -> Int32 {
        let clock = ContinuousClock(), deadline = clock.now + timeout
        while true {
            if let status = poll() { return status }
            if clock.now >= deadline { throw CrashFailure(description: "\(commandLine) still runs after \(timeout)") }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// `kill -9`, then the exit status (128 + 9 unless it had ended already).
    func kill9() async throws -> Int32 {
        if let status = poll() { return status }
        kill(pid, SIGKILL)
        return try await waitForExit(timeout: .seconds(60))
    }

    func killAndReap() {
        guard poll() == nil else { return }
        kill(pid, SIGKILL)
        lock.withLock {
            var raw: Int32 = 0
            while waitpid(pid, &raw, 0) == -1 && errno == EINTR {}
            status = 128 + SIGKILL
        }
    }

    func outputTail(lines: Int = 30) -> String {
        let text = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "(no output file)"
        let all = text.split(separator: "\n", omittingEmptySubsequences: false)
        return all.suffix(lines).joined(separator: "\n")
    }

    /// glibc's posix_spawn_file_actions_addclosefrom_np (2.34+), looked up at run time.
    private typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    private static let closeFrom: AddCloseFrom? = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np") else { return nil }
        return unsafeBitCast(symbol, to: AddCloseFrom.self)
    }()
}

// MARK: - Small helpers

/// SplitMix64: a tiny seeded generator, so a failing run can be repeated from its seed.
private struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

private final class StopFlag: Sendable {
    private let flag = Mutex(false)
    var isSet: Bool { flag.withLock { $0 } }
    func set() { flag.withLock { $0 = true } }
}

/// The writer's committed transactions, each as the WAL insert positions around it.
private final class WriteLog: Sendable {
    struct Entry: Sendable { let before: LSN, after: LSN }
    private let entries = Mutex<[Entry]>([])

    var count: Int { entries.withLock { $0.count } }
    func append(before: LSN, after: LSN) { entries.withLock { $0.append(Entry(before: before, after: after)) } }

    /// A transaction that certainly committed after `start` and ended at or before `end`.
    func firstWithin(after start: LSN, upTo end: LSN) -> Entry? {
        entries.withLock { $0.first { $0.before > start && $0.after <= end } }
    }
}
