import ArgumentParser
import FerryCore
import FerryLocalPostgres
import FerrySQLite
import Foundation
import Logging
import PostgresReplication
import PostgresWire

extension Ferry {
    /// The README's first command: the main job end to end, on embedded defaults.
    struct Demo: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run the main job end to end on a throwaway local PostgreSQL into an embedded SQLite replica.",
            discussion: """
            Starts a throwaway PostgreSQL from the installed binaries, fills a small shop \
            (customers, products, orders), copies it consistently with a new slot into a SQLite \
            replica while a workload inserts, updates and deletes, streams every change, then \
            checks that the replica equals the source and cleans up.
            """
        )

        @Option(help: "Orders to create before the snapshot.")
        var rows: Int = 200_000

        @Option(help: "Seconds of insert/update/delete workload during the snapshot and streaming.")
        var seconds: Int = 10

        @Option(help: "Keep the replica here instead of a temporary directory.")
        var keep: String?

        func validate() throws {
            guard rows >= 1 && rows <= 50_000_000 else { throw ValidationError("--rows must be between 1 and 50,000,000") }
            guard seconds >= 0 && seconds <= 3600 else { throw ValidationError("--seconds must be between 0 and 3600") }
        }

        func run() async throws {
            var logger = Logger(label: "ferry.demo")
            logger.logLevel = .warning
            let say = { (line: String) in print(line); fflush(nil) }

            say("ferry demo: starting a throwaway PostgreSQL…")
            let installation = try PostgresInstallation.locate()
            let cluster = try await offCooperativePool {
                try LocalPostgres.start(name: "demo", installation: installation, settings: [
                    "wal_level = 'logical'", "max_replication_slots = 10", "max_wal_senders = 10",
                    "shared_buffers = '128MB'", "fsync = off", "timezone = 'UTC'",
                ], hba: "local all all trust\nlocal replication all trust\nhost all all 127.0.0.1/32 trust\n")
            }
            defer { cluster.stop() }
            let directory = keep ?? FileManager.default.temporaryDirectory.appendingPathComponent("ferry-demo-\(UUID().uuidString)").path
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            defer { if keep == nil { try? FileManager.default.removeItem(atPath: directory) } }

            say("ferry demo: \(installation.versionString.prefix(40)) on port \(cluster.port); creating a shop with \(rows) orders…")
            let schema = DemoShop.schema(orders: rows)
            try await offCooperativePool {
                try cluster.psql(database: "postgres", "CREATE DATABASE shop")
                try cluster.psql(database: "shop", schema)
            }

            let source = try ConnectionConfiguration.parse(cluster.connectionString(database: "shop"))
            let replicaPath = directory + "/replica.db"
            let pipeline = Pipeline(
                configuration: PipelineConfiguration(name: "demo", source: source, tables: ["public.*"], snapshotParallelism: 2),
                destinations: [SQLiteDestination(path: replicaPath, pipeline: "demo", logger: logger)],
                state: try SQLiteStateStore(path: directory + "/state.db", logger: logger), logger: logger)

            let clock = ContinuousClock()
            let started = clock.now
            say("ferry demo: snapshot + streaming into \(replicaPath), with \(seconds) s of writes…")
            let running = Task { try await pipeline.run() }
            let workload = try await DemoShop.workload(source: source, seconds: seconds, orders: rows)

            // Caught up: every change up to a heartbeat emitted now is durable in the replica. (The
            // current WAL position alone is confirmed only once something published follows it.)
            // A heartbeat emitted before the pipeline made its slot (the workload can end first
            // on a busy machine) never comes: then one more each second, until one is confirmed.
            let target = try await DemoShop.emitHeartbeat(source)
            let deadline = clock.now + .seconds(120)
            var heartbeatAt = clock.now
            while pipeline.statistics.confirmedPosition < target {
                if running.isCancelled || clock.now > deadline { break }
                if clock.now - heartbeatAt >= .seconds(1) {
                    _ = try await DemoShop.emitHeartbeat(source)
                    heartbeatAt = clock.now
                }
                try await Task.sleep(for: .milliseconds(50))
            }
            let caughtUp = clock.now
            pipeline.stopper.requestStop()
            try await running.value
            for destination in pipeline.destinations { try await destination.close() }

            say("ferry demo: comparing the replica with the source…")
            let differences = try await DemoShop.compare(source: source, replicaPath: replicaPath)
            let elapsed = caughtUp - started
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            let copied = pipeline.statistics.snapshotRows
            say("""
            ferry demo: \(copied) rows copied and \(pipeline.statistics.changes) changes in \(pipeline.statistics.transactions) \
            transactions streamed in \(String(format: "%.1f", seconds)) s (\(Int(Double(copied + pipeline.statistics.changes) / max(seconds, 0.001))) rows/s); \
            workload: \(workload.inserts) inserts, \(workload.updates) updates, \(workload.deletes) deletes; \
            lag at the end: \(pipeline.statistics.confirmedPosition >= target ? "0 bytes" : "\(target.bytes(since: pipeline.statistics.confirmedPosition)) bytes")
            """)
            guard pipeline.statistics.confirmedPosition >= target else {
                throw FerryError(.destination, "the replica did not catch up with the source within 120 s",
                                 fix: "look at the messages above; on a very busy machine run the demo again with fewer --rows")
            }
            guard differences.isEmpty else {
                throw FerryError(.destination, "the replica does not match the source: " + differences.joined(separator: "; "),
                                 fix: "this is a bug in Ferry; please report it with this output")
            }
            say("ferry demo: replica matches source")
        }
    }
}


/// The demo's data and workload.
enum DemoShop {
    static func schema(orders: Int) -> String {
        let customers = max(1, min(20_000, orders / 10))
        return """
        CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, email text, balance numeric(12,2));
        CREATE TABLE products (id int PRIMARY KEY, name text NOT NULL, price numeric(10,2) NOT NULL, tags text[]);
        CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id int NOT NULL, product_id int NOT NULL,
                             qty int NOT NULL, status text NOT NULL, note text, created timestamp NOT NULL);
        INSERT INTO customers SELECT g, 'customer ' || g, 'c' || g || '@example.com', (g % 1000) * 1.25
          FROM generate_series(1, \(customers)) g;
        INSERT INTO products SELECT g, 'product ' || g, 1 + (g % 200) * 0.5, ARRAY['tag' || (g % 7), 'x"y']
          FROM generate_series(1, 1000) g;
        INSERT INTO orders (customer_id, product_id, qty, status, note, created)
          SELECT 1 + g % \(customers), 1 + g % 1000, 1 + g % 5, 'new', CASE WHEN g % 10 = 0 THEN NULL ELSE md5(g::text) END,
                 timestamp '2026-01-01' + g * interval '1 second'
          FROM generate_series(1, \(orders)) g;
        ANALYZE;
        """
    }

    struct WorkloadCounts { var inserts = 0, updates = 0, deletes = 0 }

    /// Small transactions of inserts, updates and deletes for `seconds`, through Ferry's own client.
    /// Runs `body` on a fresh connection and closes it afterwards.
    static func withConnection<T>(_ source: ConnectionConfiguration, _ body: (PGConnection) async throws -> T) async throws -> T {
        let connection = try await PGConnection.connect(source, replication: nil)
        do {
            let result = try await body(connection)
            await connection.close()
            return result
        } catch {
            await connection.close()
            throw error
        }
    }

    static func workload(source: ConnectionConfiguration, seconds: Int, orders: Int) async throws -> WorkloadCounts {
        try await withConnection(source) { connection in try await workload(connection, seconds: seconds, orders: orders) }
    }

    private static func workload(_ connection: PGConnection, seconds: Int, orders: Int) async throws -> WorkloadCounts {
        var counts = WorkloadCounts()
        let clock = ContinuousClock()
        let end = clock.now + .seconds(seconds)
        var round = 0
        while clock.now < end {
            round += 1
            let id = 1 + (round * 7919) % max(orders, 1)
            try await connection.simpleQuery("""
                BEGIN;
                INSERT INTO orders (customer_id, product_id, qty, status, note, created)
                  VALUES (\(1 + round % 100), \(1 + round % 1000), \(1 + round % 9), 'new', 'live \(round)', now());
                UPDATE orders SET status = 'shipped', qty = qty + 1 WHERE id = \(id);
                UPDATE customers SET balance = balance + 1 WHERE id = \(1 + round % 100);
                DELETE FROM orders WHERE id = \(1 + (round * 104_729) % max(orders, 1)) AND \(round % 3) = 0;
                COMMIT;
                """)
            counts.inserts += 1
            counts.updates += 2
            if round % 3 == 0 { counts.deletes += 1 }
            try await Task.sleep(for: .milliseconds(5))
        }
        return counts
    }

    /// Emits Ferry's heartbeat on the source; returns its position, which the pipeline confirms
    /// once everything before it is durable.
    static func emitHeartbeat(_ source: ConnectionConfiguration) async throws -> LSN {
        let rows = try await withConnection(source) {
            try await $0.query(Pipeline.heartbeatStatement)
        }
        guard let text = rows.first?.first ?? nil, let lsn = LSN(text) else {
            throw FerryError(.source, "could not emit a heartbeat on the source")
        }
        return lsn
    }

    /// Compares every row of every table, as text, source against replica.
    static func compare(source: ConnectionConfiguration, replicaPath: String) async throws -> [String] {
        try await withConnection(source) { try await compare($0, replicaPath: replicaPath) }
    }

    private static func compare(_ connection: PGConnection, replicaPath: String) async throws -> [String] {
        let replica = try SQLiteConnection(path: replicaPath, readOnly: true)
        defer { replica.close() }
        var differences: [String] = []
        let tables = [("customers", "id, name, email, balance"), ("products", "id, name, price, tags"),
                      ("orders", "id, customer_id, product_id, qty, status, note, created")]
        for (table, columns) in tables {
            let expected = try await connection.query("SELECT \(columns) FROM \(table) ORDER BY id")
            let actual = try replica.query("SELECT \(columns) FROM \"public.\(table)\" ORDER BY id").map { row in
                row.map { value -> String? in
                    switch value {
                    case .null: nil
                    case .integer(let n): String(n)
                    case .real(let d): String(d)
                    case .text(let s): s
                    case .blob(let b): "\\x" + b.map { String(format: "%02x", $0) }.joined()
                    }
                }
            }
            if expected.count != actual.count {
                differences.append("\(table): \(actual.count) rows in the replica, \(expected.count) in the source")
            } else if let index = expected.indices.first(where: { expected[$0] != actual[$0] }) {
                differences.append("\(table): row \(index) differs: source \(expected[index]) replica \(actual[index])")
            }
        }
        return differences
    }
}
