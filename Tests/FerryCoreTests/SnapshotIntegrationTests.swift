import FerryCore
import FerryTestSupport
import Logging
import NIOCore
import PostgresReplication
import PostgresWire
import Testing

/// The snapshot against a real PostgreSQL: chunked parallel copy, exported snapshots, resume,
/// types, the binary COPY parser on real bytes, and errors.
@Suite("Snapshot (PostgreSQL)")
struct SnapshotIntegrationTests {
    /// Compares delivered rows (any order) with the server's text rows ordered by id.
    func expectSameRows(_ delivered: [Row], _ expected: [[String?]], sourceLocation: SourceLocation = #_sourceLocation) {
        let sorted = delivered.sorted { snapshotID($0) < snapshotID($1) }.map(snapshotText)
        let wanted = expected.map { $0.map { $0 ?? "NULL" } }
        #expect(sorted.count == wanted.count, "row count", sourceLocation: sourceLocation)
        if let index = sorted.indices.first(where: { $0 < wanted.count && sorted[$0] != wanted[$0] }) {
            Issue.record("row \(index) differs: \(sorted[index]) vs \(wanted[index])", sourceLocation: sourceLocation)
        }
    }

    @Test("a 50k-row table copied in chunks by 3 workers gives exactly the table's rows")
    func chunkedParallelCopy() async throws {
        try await withTestDatabase(.trust, prefix: "snap") { db in
            try await db.psql("""
                CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, amount numeric(12,2),
                                    created timestamptz, note text);
                INSERT INTO items
                SELECT g, 'item ' || g, g * 1.25, timestamptz '2024-01-01 00:00:00+00' + g * interval '1 minute',
                       CASE WHEN g % 7 = 0 THEN NULL ELSE md5(g::text) END
                FROM generate_series(1, 50000) g;
                CREATE TABLE small (id int PRIMARY KEY, label text);
                INSERT INTO small VALUES (1, 'one'), (2, 'two');
                """)
            let store = SnapshotTestStateStore()
            let sink = SnapshotCollectingSink()
            let coordinator = SnapshotCoordinator(
                source: try db.snapshotConfiguration, tables: [.table(schema: "public", name: "items"), .table(schema: "public", name: "small")],
                snapshotName: nil, stateStore: store, pipeline: "p",
                options: SnapshotOptions(parallelism: 3, chunkSize: .pages(60), batchRows: 1000, batchBytes: 64 << 10))
            let summary = try await coordinator.run(into: sink)

            let expected = try await db.snapshotTextRows(
                "SELECT id, name, amount, created, note FROM items ORDER BY id")
            expectSameRows(await sink.rows(of: "public.items"), expected)
            #expect(Set(await sink.rows(of: "public.items").map(snapshotID)).count == 50_000)
            expectSameRows(await sink.rows(of: "public.small"), [["1", "one"], ["2", "two"]])

            let progress = summary.progress
            #expect(progress.isComplete)
            #expect(progress.tablesDone == 2 && progress.tablesTotal == 2)
            #expect(progress.chunksTotal >= 5, "the big table is split: \(progress.chunksTotal) chunks")
            #expect(progress.rows == 50_002)
            #expect(progress.bytes > 0)
            let marks = await store.marks
            #expect(marks.count == progress.chunksTotal)
            #expect(Set(marks.map { "\($0.table)/\($0.chunk)" }).count == marks.count)
            #expect(await sink.framingProblems() == [])
            #expect(await sink.overlapped == false)
            #expect(await sink.maximumBatch <= 1000)
            #expect(await sink.flushes >= 1)
            #expect(summary.tables.map(\.schema.qualifiedName) == ["public.items", "public.small"])
        }
    }

    @Test("without a terminal, progress goes to the log periodically and once at the end")
    func progressLog() async throws {
        try await withTestDatabase(.trust, prefix: "snap") { db in
            try await db.psql("""
                CREATE TABLE counted (id int PRIMARY KEY);
                INSERT INTO counted SELECT generate_series(1, 2000);
                """)
            let log = SnapshotLogCapture()
            let logger = Logger(label: "test.snapshot") { _ in SnapshotCapturingLogHandler(capture: log) }
            let reporter = SnapshotProgressReporter(logger: logger, style: .log, logInterval: .milliseconds(20))
            let coordinator = SnapshotCoordinator(
                source: try db.snapshotConfiguration, tables: [.table(schema: "public", name: "counted")], snapshotName: nil,
                stateStore: SnapshotTestStateStore(), pipeline: "p",
                options: SnapshotOptions(parallelism: 2, chunkSize: .pages(2), batchRows: 100), logger: logger)
            try await coordinator.run(into: SnapshotCollectingSink(), reporter: reporter)
            let entries = log.entries
            let final = try #require(entries.last { $0.message == "snapshot progress (final)" })
            #expect(final.metadata["rows"] == "2000")
            #expect(final.metadata["tables"] == "1/1")
            #expect(final.metadata["percent"] == "100")
            #expect(entries.contains { $0.message == "snapshot starting" })
            #expect(coordinator.progress.isComplete && coordinator.progress.rows == 2000)
        }
    }

    @Test("a sink that fails stops every worker, and no chunk counts as done")
    func failingSink() async throws {
        struct DiskFull: Error {}
        actor FailingSink: SnapshotSink {
            var writes = 0
            func write(_ events: [PipelineEvent]) async throws {
                writes += 1
                if writes == 3 { throw DiskFull() }
            }
            func flush() async throws { throw DiskFull() }
        }
        try await withTestDatabase(.trust, prefix: "snap") { db in
            try await db.psql("""
                CREATE TABLE doomed (id int PRIMARY KEY, body text);
                INSERT INTO doomed SELECT g, repeat('x', 100) FROM generate_series(1, 3000) g;
                """)
            let store = SnapshotTestStateStore()
            let coordinator = SnapshotCoordinator(
                source: try db.snapshotConfiguration, tables: [.table(schema: "public", name: "doomed")], snapshotName: nil,
                stateStore: store, pipeline: "p", options: SnapshotOptions(parallelism: 3, chunkSize: .pages(4), batchRows: 50))
            await #expect(throws: DiskFull.self) { try await coordinator.run(into: FailingSink()) }
            #expect(await store.marks.isEmpty)
            // No snapshot session is left behind on the source (backends exit shortly after the close).
            try await eventually("the workers' sessions end", timeout: .seconds(5)) {
                try await db.snapshotTextRows("""
                    SELECT count(*) FROM pg_stat_activity
                    WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'
                    """).first?.first == "0"
            }
        }
    }

    @Test("with the slot's exported snapshot, workers see the data as of slot creation")
    func exportedSnapshot() async throws {
        try await withTestDatabase(.trust, prefix: "snap") { db in
            try await db.psql("""
                CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL);
                INSERT INTO accounts SELECT g, g * 10 FROM generate_series(1, 3000) g;
                """)
            let configuration = try db.snapshotConfiguration
            let replication = try await PGConnection.connect(configuration, replication: .database)
            do {
                let slot = try await replication.createReplicationSlot("ferry_snapshot_export", temporary: true, snapshot: .export)
                let name = try #require(slot.snapshotName)
                // Changes after the slot's consistent point: the stream's business, not the snapshot's.
                try await db.psql("""
                    INSERT INTO accounts SELECT g, 0 FROM generate_series(3001, 3500) g;
                    DELETE FROM accounts WHERE id <= 500;
                    UPDATE accounts SET balance = -1 WHERE id BETWEEN 1000 AND 2000;
                    """)
                let sink = SnapshotCollectingSink()
                let coordinator = SnapshotCoordinator(
                    source: configuration, tables: [try TableSelector(parsing: "public.accounts")], snapshotName: name,
                    stateStore: SnapshotTestStateStore(), pipeline: "p",
                    options: SnapshotOptions(parallelism: 3, chunkSize: .pages(3)))
                let summary = try await coordinator.run(into: sink)
                #expect(summary.progress.chunksTotal > 3)
                let rows = await sink.rows.sorted { snapshotID($0) < snapshotID($1) }
                #expect(rows.map(snapshotID) == Array(1...3000))
                #expect(rows.allSatisfy { $0[1] == .int32(Int32(snapshotID($0) * 10)) })
                #expect(await sink.framingProblems() == [])

                // Without the snapshot, a fresh one sees the changes.
                let fresh = SnapshotCollectingSink()
                try await SnapshotCoordinator(
                    source: configuration, tables: [.table(schema: "public", name: "accounts")], snapshotName: nil,
                    stateStore: SnapshotTestStateStore(), pipeline: "p", options: SnapshotOptions(parallelism: 2)
                ).run(into: fresh)
                #expect(await fresh.rows.count == 3000)
                #expect(await fresh.rows.contains { $0[1] == .int32(-1) })
            } catch {
                await replication.close()
                throw error
            }
            await replication.close()
        }
    }

    @Test("resume reads only the pages no done chunk covers, even with another chunk size")
    func resume() async throws {
        try await withTestDatabase(.trust, prefix: "snap") { db in
            try await db.psql("""
                CREATE TABLE events (id int PRIMARY KEY, payload text NOT NULL);
                INSERT INTO events SELECT g, repeat(chr(65 + g % 26), 40) FROM generate_series(1, 5000) g;
                """)
            let table = try #require(try await db.snapshotTables([.table(schema: "public", name: "events")]).first)
            let plan = SnapshotChunkPlanner(chunkSize: .pages(8)).plan(table)
            try #require(plan.count >= 4)
            let done = [plan[0], plan[2]]
            let sink = SnapshotCollectingSink()
            let store = SnapshotTestStateStore(done: ["public.events": Set(done.map(\.id))]) { _, _ in
                // A chunk counts as done only once the sink flushed its rows (one worker: nothing else writes).
                #expect(await sink.unflushedRows == 0)
            }
            let options = SnapshotOptions(parallelism: 1, chunkSize: .pages(5), batchRows: 300)
            let coordinator = SnapshotCoordinator(
                source: try db.snapshotConfiguration, tables: [.table(schema: "public", name: "events")], snapshotName: nil,
                stateStore: store, pipeline: "p", options: options)
            let summary = try await coordinator.run(into: sink)

            let doneCondition = done.map { "(\($0.ctidPredicate!))" }.joined(separator: " OR ")
            let skipped = Set(try await db.snapshotTextRows("SELECT id FROM events WHERE \(doneCondition)").compactMap { $0[0].flatMap { Int($0) } })
            #expect(!skipped.isEmpty)
            let delivered = await sink.rows.map(snapshotID)
            #expect(delivered.count == Set(delivered).count, "no row twice")
            #expect(Set(delivered) == Set(1...5000).subtracting(skipped))
            #expect(summary.progress.chunksSkipped == 2)
            #expect(await sink.framingProblems() == [])

            // Everything is recorded now: a third run reads nothing and sends nothing.
            let again = SnapshotCollectingSink()
            let last = try await SnapshotCoordinator(
                source: try db.snapshotConfiguration, tables: [.table(schema: "public", name: "events")], snapshotName: nil,
                stateStore: store, pipeline: "p", options: options
            ).run(into: again)
            #expect(await again.events.isEmpty)
            #expect(last.progress.isComplete && last.progress.tablesDone == 1 && last.progress.rows == 0)
        }
    }

    @Test("the binary COPY parser gives the same tuples however the stream is split")
    func parserOnRealBytes() async throws {
        try await withTestDatabase(.trust, prefix: "snap") { db in
            try await db.psql("""
                CREATE TABLE blobs (id int, body text, data bytea);
                INSERT INTO blobs VALUES (1, 'short', '\\x00ff'), (2, NULL, NULL), (3, '', ''),
                                         (4, repeat('long ', 40000), decode(repeat('ab', 5000), 'hex'));
                INSERT INTO blobs SELECT g, 'row ' || g, NULL FROM generate_series(5, 200) g;
                """)
            let connection = try await db.snapshotConnection()
            var messages: [ByteBuffer] = []
            try await connection.copyOut("COPY (SELECT id, body, data FROM blobs ORDER BY id) TO STDOUT (FORMAT binary)") {
                messages.append($0)
            }
            await connection.close()

            func parse(_ pieces: [ByteBuffer]) throws -> [[ByteBuffer?]] {
                var parser = BinaryCopyParser()
                var tuples: [[ByteBuffer?]] = []
                for piece in pieces {
                    try parser.append(piece)
                    while let tuple = try parser.nextTuple() { tuples.append(tuple.fieldBytes) }
                }
                try parser.finish()
                return tuples
            }
            var all = ByteBuffer()
            for var message in messages { all.writeBuffer(&message) }
            let whole = try parse([all])
            #expect(whole.count == 200)
            #expect(whole[1][1] == nil && whole[2][1]?.readableBytes == 0)
            #expect(whole[3][1]?.readableBytes == 200_000)
            #expect(try parse(messages) == whole)
            let bytes = all.readableBytesView
            #expect(try parse(bytes.map { ByteBuffer(bytes: [$0]) }) == whole)
            var generator = SystemRandomNumberGenerator()
            var pieces: [ByteBuffer] = []
            var index = bytes.startIndex
            while index < bytes.endIndex {
                let end = min(bytes.endIndex, index + Int.random(in: 1...9000, using: &generator))
                pieces.append(ByteBuffer(bytes: bytes[index..<end]))
                index = end
            }
            #expect(try parse(pieces) == whole)
        }
    }

    @Test("many column types round-trip through binary COPY")
    func manyTypes() async throws {
        try await withTestDatabase(.trust, prefix: "snap") { db in
            try await db.psql("""
                CREATE TYPE mood AS ENUM ('sad', 'happy');
                CREATE DOMAIN positive AS int CHECK (VALUE > 0);
                CREATE TABLE typed (
                    id int PRIMARY KEY, dropme int, i2 smallint, i8 bigint, t text, v varchar(10), n numeric,
                    n2 numeric(10,3), b bool, f4 real, f8 double precision, ts timestamp, tstz timestamptz, d date,
                    tm time, iv interval, u uuid, bin bytea, ia int[], ta text[], j json, jb jsonb, m mood, p positive,
                    addr inet, twice int GENERATED ALWAYS AS (id * 2) STORED);
                ALTER TABLE typed DROP COLUMN dropme;
                INSERT INTO typed (id, i2, i8, t, v, n, n2, b, f4, f8, ts, tstz, d, tm, iv, u, bin, ia, ta, j, jb, m, p, addr) VALUES
                  (1, -32768, 9223372036854775807, 'héllo ✓', 'abc', 'NaN', 3.14159, true, 1.5, 0.1,
                   '2024-02-29 13:45:00.123456', '2024-02-29 13:45:00+05:30', '0044-03-15 BC', '24:00:00',
                   '1 year 2 mons -3 days 04:05:06.5', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '\\x00ff10',
                   '{1,NULL,3}', '{"a b","c,d",NULL}', '{"k" : [1, 2.50]}', '{"b": 1, "a": [true, null]}', 'happy', 7,
                   '192.168.0.1/24'),
                  (2, 0, -1, '', '', '-123456789012345678901234567890.000001', -1, false, '-Infinity', 'NaN',
                   'infinity', '-infinity', 'infinity', '00:00:00', '0', '00000000-0000-0000-0000-000000000000', '\\x',
                   '{}', '{}', 'null', '[]', 'sad', 1, '::1'),
                  (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
                   NULL, NULL, NULL, NULL, NULL, NULL, NULL);
                """)
            let table = try #require(try await db.snapshotTables([.table(schema: "public", name: "typed")]).first)
            let names = table.schema.columns.map(\.name)
            #expect(!names.contains("dropme") && !names.contains("twice"), "dropped and generated columns are left out")
            #expect(names.first == "id" && names.count == 24)
            #expect(table.schema.columns[0].isKey && table.schema.columns[0].notNull == true)
            #expect(table.schema.columns[0].typeName == "int4")
            #expect(table.schema.columns.first { $0.name == "m" }?.typeName == "public.mood")
            #expect(table.schema.keyColumnIndexes == [0])

            let sink = SnapshotCollectingSink()
            try await SnapshotCoordinator(
                source: try db.snapshotConfiguration, tables: [.table(schema: "public", name: "typed")], snapshotName: nil,
                stateStore: SnapshotTestStateStore(), pipeline: "p", options: SnapshotOptions(parallelism: 2)
            ).run(into: sink)
            let expected = try await db.snapshotTextRows(
                "SELECT " + names.joined(separator: ", ") + " FROM typed ORDER BY id")
            expectSameRows(await sink.rows, expected)
            let rows = await sink.rows.sorted { snapshotID($0) < snapshotID($1) }
            let allNull = rows[2].dropFirst().allSatisfy { $0.isNull }
            #expect(allNull)
            #expect(rows[0][names.firstIndex(of: "m")!] == .text("happy"))
            #expect(rows[0][names.firstIndex(of: "p")!] == .int32(7))
        }
    }

    @Test("a publication's tables, column list and row filter")
    func publication() async throws {
        try await withTestDatabase(.trust, prefix: "snap") { db in
            try await db.psql("""
                CREATE TABLE pubt (id int PRIMARY KEY, a text, secret text);
                INSERT INTO pubt SELECT g, 'a' || g, 's' || g FROM generate_series(1, 100) g;
                CREATE TABLE other (id int PRIMARY KEY);
                CREATE PUBLICATION pub FOR TABLE pubt (id, a) WHERE (id % 2 = 0);
                """)
            let tables = try await db.snapshotTables([.publication("pub")])
            #expect(tables.map(\.schema.qualifiedName) == ["public.pubt"])
            #expect(tables.first?.schema.columns.map(\.name) == ["id", "a"])
            let sink = SnapshotCollectingSink()
            try await SnapshotCoordinator(
                source: try db.snapshotConfiguration, tables: [.publication("pub")], snapshotName: nil,
                stateStore: SnapshotTestStateStore(), pipeline: "p"
            ).run(into: sink)
            let rows = await sink.rows.sorted { snapshotID($0) < snapshotID($1) }
            #expect(rows.map(snapshotID) == Array(stride(from: 2, through: 100, by: 2)))
            #expect(rows.first.map(snapshotText) == ["2", "a2"])
        }
    }

    @Test("catalog: schema.*, replica identity, partitioned tables")
    func catalog() async throws {
        try await withTestDatabase(.trust, prefix: "snap") { db in
            try await db.psql("""
                CREATE SCHEMA sales;
                CREATE TABLE sales.orders (id int PRIMARY KEY, code text NOT NULL UNIQUE, note text);
                CREATE TABLE sales.lines (order_id int, line int, qty int);
                ALTER TABLE sales.orders REPLICA IDENTITY USING INDEX orders_code_key;
                ALTER TABLE sales.lines REPLICA IDENTITY FULL;
                CREATE TABLE sales.parted (id int, at date, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
                CREATE TABLE sales.parted_2024 PARTITION OF sales.parted FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
                INSERT INTO sales.parted VALUES (1, '2024-05-01'), (2, '2024-06-01');
                """)
            let tables = try await db.snapshotTables([.schema("sales")])
            #expect(tables.map(\.schema.qualifiedName) == ["sales.lines", "sales.orders", "sales.parted"])
            let lines = tables[0].schema, orders = tables[1].schema, parted = tables[2]
            let allKeys = lines.columns.allSatisfy { $0.isKey }
            #expect(lines.replicaIdentity == .full && allKeys)
            #expect(orders.replicaIdentity == .index && orders.columns.map(\.isKey) == [false, true, false])
            #expect(parted.kind == .partitioned && parted.schema.keyColumnIndexes == [0, 1])
            let sink = SnapshotCollectingSink()
            try await SnapshotCoordinator(
                source: try db.snapshotConfiguration, tables: [.table(schema: "sales", name: "parted")], snapshotName: nil,
                stateStore: SnapshotTestStateStore(), pipeline: "p"
            ).run(into: sink)
            #expect(await sink.rows.map(snapshotID).sorted() == [1, 2])
        }
    }

    @Test("missing tables, views, schemas, publications and lost snapshots give clear errors")
    func errors() async throws {
        try await withTestDatabase(.trust, prefix: "snap") { db in
            try await db.psql("""
                CREATE TABLE "Orders" (id int PRIMARY KEY);
                CREATE VIEW recent AS SELECT * FROM "Orders";
                """)
            let coordinator = SnapshotCoordinator(
                source: try db.snapshotConfiguration, tables: [.table(schema: "public", name: "nope")], snapshotName: nil,
                stateStore: SnapshotTestStateStore(), pipeline: "p")
            let missing = await #expect(throws: SnapshotError.self) { try await coordinator.run(into: SnapshotCollectingSink()) }
            #expect(missing?.code == .tableNotFound)
            #expect(missing?.message.contains("public.nope") == true)
            #expect(missing?.message.contains(db.name) == true)
            #expect(missing?.fix?.contains("schema.table") == true)

            let caseMismatch = await #expect(throws: SnapshotError.self) {
                try await db.snapshotTables([try TableSelector(parsing: "orders")])
            }
            #expect(caseMismatch?.fix?.contains("public.\"Orders\"") == true, "\(String(describing: caseMismatch))")

            let view = await #expect(throws: SnapshotError.self) { try await db.snapshotTables([.table(schema: "public", name: "recent")]) }
            #expect(view?.code == .notATable && view?.message.contains("view") == true)

            let schema = await #expect(throws: SnapshotError.self) { try await db.snapshotTables([.schema("nowhere")]) }
            #expect(schema?.code == .tableNotFound && schema?.message.contains("nowhere") == true)

            let publication = await #expect(throws: SnapshotError.self) { try await db.snapshotTables([.publication("nopub")]) }
            #expect(publication?.code == .publicationNotFound && publication?.fix?.contains("CREATE PUBLICATION") == true)

            let lost = await #expect(throws: SnapshotError.self) {
                try await SnapshotCoordinator(
                    source: try db.snapshotConfiguration, tables: [.table(schema: "public", name: "Orders")],
                    snapshotName: "00000003-00000002-1", stateStore: SnapshotTestStateStore(), pipeline: "p"
                ).run(into: SnapshotCollectingSink())
            }
            #expect(lost?.code == .snapshotNotAvailable && lost?.fix?.contains("idle") == true)
        }
    }
}
