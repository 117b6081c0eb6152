import FerryCore
import FerryTestSupport
import Foundation
import Logging
import NIOCore
import PostgresNIO
import PostgresReplication
import PostgresWire
import Testing
@testable import FerryPostgres

/// Rows of `table` as PostgreSQL prints them, in key order: how two databases are compared.
func rowTexts(_ database: TestDatabase, _ table: String, orderBy: String = "id") async throws -> String {
    try await database.psql("SELECT \(orderBy), t::text FROM \(table) t ORDER BY \(orderBy)")
}

/// Warnings and errors on standard error (FERRY_TEST_LOG=debug for more).
func testLogger() -> Logger {
    var logger = Logger(label: "test")
    logger.logLevel = ProcessInfo.processInfo.environment["FERRY_TEST_LOG"].flatMap { Logger.Level(rawValue: $0) } ?? .warning
    return logger
}

/// The first line where two row listings differ (for failure messages).
func firstDifference(_ left: String, _ right: String) -> String {
    let a = left.split(separator: "\n", omittingEmptySubsequences: false), b = right.split(separator: "\n", omittingEmptySubsequences: false)
    for index in 0..<max(a.count, b.count) where (index < a.count ? a[index] : "<none>") != (index < b.count ? b[index] : "<none>") {
        let x = Array(index < a.count ? a[index] : "<none>"), y = Array(index < b.count ? b[index] : "<none>")
        let at = zip(x, y).prefix { $0 == $1 }.count
        let from = max(0, at - 80)
        return "line \(index + 1), character \(at):\n  target: …\(String(x[from..<min(x.count, at + 120)]))\n  source: …\(String(y[from..<min(y.count, at + 120)]))"
    }
    return "no difference"
}

func postgresPipeline(_ source: TestDatabase, _ target: TestDatabase, tables: [String], snapshot: PipelineConfiguration.SnapshotMode = .initial,
                      once: Bool = true, state: MemoryStateStore, targetURL: String? = nil,
                      options: PostgresDestination.Options? = nil) throws -> (Pipeline, PostgresDestination) {
    let destination = try PostgresDestination(url: targetURL ?? target.url, pipeline: source.name, options: options, logger: testLogger())
    let configuration = PipelineConfiguration(name: source.name, source: try ConnectionConfiguration.parse(source.url),
                                              tables: tables, snapshot: snapshot, once: once)
    return (Pipeline(configuration: configuration, destinations: [destination], state: state, logger: quietLogger()), destination)
}

@Suite struct PostgresDestinationTests {
    @Test func arrayLiteralsQuoteEveryElement() {
        let texts: [Row] = ["a", nil, "b\"c", "d\\e", "{x,y}", ""].map { [$0.map(Value.text) ?? .null] }
        #expect(PostgresDestination.arrayLiteral(texts, column: 0) == #"{"a",NULL,"b\"c","d\\e","{x,y}",""}"#)
        #expect(PostgresDestination.arrayLiteral([], column: 0) == "{}")
        let rows: [Row] = [[.int32(1), .text("a\"b\\c")], [.null, .null], [.int32(-7), .text("ünï")]]
        #expect(PostgresDestination.arrayLiteral(rows, column: 0) == #"{"1",NULL,"-7"}"#)
        #expect(PostgresDestination.arrayLiteral(rows, column: 1) == #"{"a\"b\\c",NULL,"ünï"}"#)
    }

    /// Which failures are a lost connection (the pipeline reconnects and replays) and which a
    /// refusal (it stops with the server's words), from each client the destination uses.
    @Test func connectionLossesAndRefusalsAreToldApart() {
        func server(_ state: String) -> PostgresServerError {
            PostgresServerError(fields: [.sqlState: state, .message: "m", .detail: "d"])
        }
        // Ferry's own client (the one-statement commit).
        #expect(PostgresDestination.isConnectionLost(PGConnectionError(.connectionClosed, "closed")))
        #expect(PostgresDestination.isConnectionLost(PGConnectionError(.server, "shutdown", serverError: server("57P01"))))
        #expect(!PostgresDestination.isConnectionLost(PGConnectionError(.server, "dup", serverError: server("23505"))))
        #expect(PostgresDestination.serverRefusal(PGConnectionError(.server, "dup", serverError: server("23505")))?.sqlState == "23505")
        #expect(PostgresDestination.serverRefusal(PGConnectionError(.connectionClosed, "closed")) == nil)
        // postgres-nio's older API (prepared statements) reports a closed connection its own way.
        #expect(PostgresDestination.isConnectionLost(PostgresError.connectionClosed))
        #expect(PostgresDestination.isConnectionLost(PostgresError.protocol("Unexpected connection close")))
        #expect(PostgresDestination.isConnectionLost(IOError(errnoCode: ECONNRESET, reason: "read")))
        #expect(PostgresDestination.isConnectionLost(ChannelError.ioOnClosedChannel))
        #expect(!PostgresDestination.isConnectionLost(FerryError(.destinationRejected, "refused")))
    }

    /// Every type of the pipeline issue, copied by the snapshot and then streamed (inserts, an
    /// update that leaves a TOAST value unchanged), compares equal by its text form.
    @Test func everyTypeRoundTripsByItsTextForm() async throws {
        try await withTestDatabase(.trust, prefix: "pgsrc") { source in
            try await withTestDatabase(.trust, prefix: "pgdst") { target in
                try await source.psql(customTypes)
                try await target.psql(customTypes)
                let samples = roundTripSamples
                let columns = samples.enumerated().map { "c\($0.offset) \($0.element.type)" }.joined(separator: ", ")
                try await source.psql("CREATE TABLE sample (id int PRIMARY KEY, big text, \(columns)); ALTER TABLE sample ALTER big SET STORAGE EXTERNAL")
                let count = samples.map(\.inputs.count).max() ?? 1
                func insert(_ ids: ClosedRange<Int>) -> String {
                    ids.map { id in
                        let values = samples.map { sample -> String in
                            let input = sample.inputs[id % sample.inputs.count]
                            return input.map { "\(sqlLiteral($0))::\(sample.type)" } ?? "NULL"
                        }
                        return "INSERT INTO sample VALUES (\(id), repeat('big', 4000), \(values.joined(separator: ", ")));"
                    }.joined(separator: "\n")
                }
                try await source.psql(insert(1...count))
                let state = MemoryStateStore()
                try await postgresPipeline(source, target, tables: ["public.sample"], state: state).0.run()
                // Compared column by column (without the large value, checked by length below).
                let projection = "(SELECT ROW(" + samples.indices.map { "c\($0)" }.joined(separator: ", ") + ") FROM sample s2 WHERE s2.id = sample.id)"
                let view = "(SELECT id, \(projection) AS r, length(big) AS big_length FROM sample) AS"
                let copied = try await rowTexts(target, view), original = try await rowTexts(source, view)
                #expect(copied == original, "\(firstDifference(copied, original))")

                try await source.psql(insert((count + 1)...(2 * count)))
                try await source.psql("UPDATE sample SET c1 = 7 WHERE id % 2 = 0; DELETE FROM sample WHERE id = 3")
                try await postgresPipeline(source, target, tables: ["public.sample"], state: state).0.run()
                let expected = try await rowTexts(source, view)
                let streamed = try await rowTexts(target, view)
                #expect(streamed == expected, "\(firstDifference(streamed, expected))")
                #expect(try await target.psql("SELECT count(*) FROM sample") == "\(2 * count - 1)")
                #expect(try await target.psql("SELECT count(*) FROM sample WHERE length(big) = 12000") == "\(2 * count - 1)",
                        "unchanged TOAST values stay as stored")
                #expect(try await target.psql("SELECT lsn FROM ferry.positions WHERE pipeline = '\(source.name)'").isEmpty == false)
            }
        }
    }

    /// Key changes, tables without a key (REPLICA IDENTITY FULL), truncate, an added column,
    /// and a renamed column refused with its fix.
    @Test func keysKeylessTablesTruncateAndSchemaChanges() async throws {
        try await withTestDatabase(.trust, prefix: "pgsrc") { source in
            try await withTestDatabase(.trust, prefix: "pgdst") { target in
                try await source.psql("""
                    CREATE TABLE keyed (id int PRIMARY KEY, v text);
                    CREATE TABLE loose (a int, b text); ALTER TABLE loose REPLICA IDENTITY FULL;
                    CREATE TABLE other (id int PRIMARY KEY);
                    INSERT INTO keyed SELECT g, 'v' || g FROM generate_series(1, 100) g;
                    INSERT INTO loose VALUES (1, 'x'), (1, 'x'), (2, 'y');
                    INSERT INTO other SELECT generate_series(1, 10);
                    """)
                let state = MemoryStateStore()
                let tables = ["public.keyed", "public.loose", "public.other"]
                try await postgresPipeline(source, target, tables: tables, state: state).0.run()
                try await source.psql("""
                    UPDATE keyed SET id = id + 1000 WHERE id <= 10;
                    UPDATE keyed SET v = 'changed' WHERE id = 50;
                    DELETE FROM loose WHERE a = 1 AND ctid = (SELECT min(ctid) FROM loose WHERE a = 1);
                    UPDATE loose SET b = 'z' WHERE a = 2;
                    INSERT INTO loose VALUES (3, NULL);
                    TRUNCATE other;
                    INSERT INTO other VALUES (42);
                    ALTER TABLE keyed ADD COLUMN extra numeric(5,1);
                    UPDATE keyed SET extra = 1.5 WHERE id = 60;
                    """)
                try await postgresPipeline(source, target, tables: tables, state: state).0.run()
                #expect(try await rowTexts(target, "keyed") == (try await rowTexts(source, "keyed")))
                #expect(try await rowTexts(target, "loose", orderBy: "a, b") == (try await rowTexts(source, "loose", orderBy: "a, b")))
                #expect(try await rowTexts(target, "other") == (try await rowTexts(source, "other")))
                #expect(try await target.psql("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'keyed'::regclass AND attname = 'extra'") == "numeric(5,1)")

                // A renamed column is not applied silently: a new run sees a column the target
                // lacks and stops with the fix.
                try await source.psql("ALTER TABLE keyed RENAME COLUMN v TO v2; UPDATE keyed SET v2 = 'r' WHERE id = 70")
                let renamed = await #expect(throws: FerryError.self) {
                    try await postgresPipeline(source, target, tables: tables, state: state).0.run()
                }
                #expect(renamed?.kind == .destinationRejected)
                #expect(renamed?.message.contains("lacks column(s) v2") == true, "\(String(describing: renamed))")
                #expect(try await target.psql("SELECT v FROM keyed WHERE id = 70") == "v70", "nothing was applied")
            }
        }
    }

    /// Rows changed on the target behind Ferry's back: each kind of conflict is counted; under
    /// `apply` the target follows the source, under `stop` the pipeline stops and names the key.
    @Test func conflictsAreCountedAndFollowThePolicy() async throws {
        try await withTestDatabase(.trust, prefix: "pgsrc") { source in
            try await withTestDatabase(.trust, prefix: "pgdst") { target in
                try await source.psql("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' FROM generate_series(1, 10) g")
                let state = MemoryStateStore()
                try await postgresPipeline(source, target, tables: ["public.t"], state: state).0.run()
                // Behind Ferry's back: row 1 gone, row 2 gone, row 100 already there.
                try await target.psql("DELETE FROM t WHERE id IN (1, 2); INSERT INTO t VALUES (100, 'stale')")
                try await source.psql("UPDATE t SET v = 'u' WHERE id = 1; DELETE FROM t WHERE id = 2; INSERT INTO t VALUES (100, 'new')")
                let (pipeline, destination) = try postgresPipeline(source, target, tables: ["public.t"], state: state)
                try await pipeline.run()
                let counted = await destination.conflicts
                #expect(counted[.updateMissing] == 1)
                #expect(counted[.deleteMissing] == 1)
                #expect(counted[.insertExists] == 1)
                #expect(try await rowTexts(target, "t") == (try await rowTexts(source, "t")), "apply: the target follows the source")

                // stop: the next conflict stops the pipeline and nothing of that transaction lands.
                try await target.psql("DELETE FROM t WHERE id = 5")
                try await source.psql("UPDATE t SET v = 'x' WHERE id IN (4, 5)")
                let error = await #expect(throws: FerryError.self) {
                    try await postgresPipeline(source, target, tables: ["public.t"], state: state,
                                               targetURL: target.url + "&ferry_conflicts=stop").0.run()
                }
                #expect(error?.kind == .destinationRejected)
                #expect(error?.message.contains("an update found no row with key (5)") == true, "\(String(describing: error))")
                #expect(try await target.psql("SELECT v FROM t WHERE id = 4") == "v", "the transaction was rolled back")
            }
        }
    }

    /// Large runs of new rows go in with COPY (escaping tabs, newlines, backslashes, NULL); a
    /// key already on the target sends the run through the upsert instead. (The enum column
    /// makes the snapshot decode the rows: see the next test for undecoded snapshot rows.)
    @Test func bulkRowsGoThroughCopyAndFallBackToTheUpsert() async throws {
        try await withTestDatabase(.trust, prefix: "pgsrc") { source in
            try await withTestDatabase(.trust, prefix: "pgdst") { target in
                let create = "CREATE TYPE mood AS ENUM ('calm', 'busy'); CREATE TABLE bulk (id int PRIMARY KEY, t text, b bytea, n numeric, a int[], j jsonb, m mood DEFAULT 'busy')"
                try await source.psql("""
                    \(create);
                    INSERT INTO bulk SELECT g, E'tab\\there\\nnew\\\\line ' || g, decode(md5(g::text), 'hex'), g / 7.0,
                                            ARRAY[g, NULL], jsonb_build_object('k', g)
                    FROM generate_series(1, 2000) g;
                    UPDATE bulk SET t = NULL WHERE id % 10 = 0;
                    """)
                // The target already has row 5 (as after a crash in the middle of a chunk).
                try await target.psql("\(create); INSERT INTO bulk (id, t) VALUES (5, 'stale')")
                let state = MemoryStateStore()
                let (first, firstDestination) = try postgresPipeline(source, target, tables: ["public.bulk"], state: state)
                try await first.run()
                #expect(await firstDestination.copiedRows == 0, "the snapshot found row 5 and took the upsert")
                #expect(try await rowTexts(target, "bulk") == (try await rowTexts(source, "bulk")))

                try await source.psql("INSERT INTO bulk SELECT g, E'x\\ty', NULL, NULL, NULL, NULL FROM generate_series(2001, 3000) g")
                let (second, secondDestination) = try postgresPipeline(source, target, tables: ["public.bulk"], state: state)
                try await second.run()
                #expect(await secondDestination.copiedRows == 1000, "the bulk insert went in with COPY")
                #expect(try await rowTexts(target, "bulk") == (try await rowTexts(source, "bulk")))
                #expect(try await target.psql("SELECT count(*) FROM bulk WHERE t LIKE E'%\\t%'") == "2800")
            }
        }
    }

    /// The runs of a bulk insert go on in one COPY (the runs are of `batchRows` rows; the COPY
    /// takes up to `commitRows`), and the rest of the transaction (updates of the new rows)
    /// comes after it; a key already on the target in a later run sends every run of that COPY
    /// through the upsert.
    @Test func runsOfNewRowsGoOnInOneCopy() async throws {
        try await withTestDatabase(.trust, prefix: "pgsrc") { source in
            try await withTestDatabase(.trust, prefix: "pgdst") { target in
                try await source.psql("CREATE TABLE spans (id int PRIMARY KEY, v text)")
                var options = PostgresDestination.Options()
                options.batchRows = 500
                options.commitRows = 10_000
                options.streamInProgress = false
                let state = MemoryStateStore()
                let (first, _) = try postgresPipeline(source, target, tables: ["public.spans"], state: state, options: options)
                try await first.run()

                try await source.psql("""
                    BEGIN;
                    INSERT INTO spans SELECT g, 'row ' || g FROM generate_series(1, 3000) g;
                    UPDATE spans SET v = 'updated' WHERE id % 100 = 0;
                    INSERT INTO spans SELECT g, E'tab\\t ' || g FROM generate_series(3001, 3300) g;
                    COMMIT
                    """)
                let (second, secondDestination) = try postgresPipeline(source, target, tables: ["public.spans"], state: state, options: options)
                try await second.run()
                #expect(try await rowTexts(target, "spans") == (try await rowTexts(source, "spans")))
                #expect(try await target.psql("SELECT count(*) FROM spans WHERE v = 'updated'") == "30")
                // The update joins the run of the last 300 inserts (a run of upserts), which is not
                // all new rows: it waits for the COPY and takes the upsert.
                #expect(await secondDestination.copies == 1, "one COPY for the six runs before the update")
                #expect(await secondDestination.copiedRows == 3000)

                // Row 5200 is on the target already: the fourth run of the next COPY meets it.
                try await target.psql("INSERT INTO spans VALUES (5200, 'stale')")
                try await source.psql("INSERT INTO spans SELECT g, 'next ' || g FROM generate_series(4001, 6000) g")
                let (third, thirdDestination) = try postgresPipeline(source, target, tables: ["public.spans"], state: state, options: options)
                try await third.run()
                #expect(try await rowTexts(target, "spans") == (try await rowTexts(source, "spans")))
                #expect(await thirdDestination.copies == 1)
                #expect(await thirdDestination.copiedRows == 0, "the COPY was rolled back; its four runs were upserted")
                #expect(await thirdDestination.conflicts[.insertExists] == 1)
            }
        }
    }

    /// The replication session lowers logical_decoding_work_mem to 8 MB when the server's is
    /// higher (``PipelineConfiguration/streamingWorkMemoryKB``): a transaction of about 30 MB of
    /// changes streams in blocks while it runs instead of arriving whole after its commit.
    @Test func largeTransactionsStreamPastEightMegabytesWhateverTheServerSays() async throws {
        try await withTestDatabase(.trust, prefix: "pgsrc") { source in
            try await withTestDatabase(.trust, prefix: "pgdst") { target in
                try await source.psql("""
                    ALTER DATABASE \(source.name) SET logical_decoding_work_mem = '1GB';
                    CREATE TABLE big (id int PRIMARY KEY, v text)
                    """)
                let state = MemoryStateStore()
                let (first, _) = try postgresPipeline(source, target, tables: ["public.big"], state: state)
                try await first.run()
                try await source.psql("INSERT INTO big SELECT g, repeat('x', 200) || g FROM generate_series(1, 100000) g")
                let (second, destination) = try postgresPipeline(source, target, tables: ["public.big"], state: state)
                try await second.run()
                #expect(await destination.streamedBlocks >= 2, "1 GB would have sent it whole after its commit")
                #expect(await destination.streamedCommits == 1)
                #expect(try await target.psql("SELECT count(*), sum(length(v)) FROM big") == (try await source.psql("SELECT count(*), sum(length(v)) FROM big")))
            }
        }
    }

    /// Snapshot rows of tables whose target columns have the source's built-in types go in
    /// undecoded (binary COPY on the loader's connection): values equal by text form; a key
    /// already on the target (a chunk read again) makes the batch an upsert; a target column
    /// of another type makes the snapshot decode that table's rows.
    @Test func snapshotRowsOfBuiltInTypesGoInUndecoded() async throws {
        try await withTestDatabase(.trust, prefix: "pgsrc") { source in
            try await withTestDatabase(.trust, prefix: "pgdst") { target in
                let columns = """
                    id bigint PRIMARY KEY, t text, v varchar(12), b bytea, n numeric(12,3), f float8, r real, ok bool,
                    d date, ts timestamptz, tl timestamp, iv interval, u uuid, ip inet, a int[], ta text[], j jsonb, x xml,
                    bits bit varying(8), c char(3), big text
                    """
                let fill = """
                    SELECT g, E'tab\\there\\nnew\\\\line ' || g, left('v' || g, 12), decode(md5(g::text), 'hex'), g / 7.0,
                           CASE g % 4 WHEN 0 THEN 'NaN' WHEN 1 THEN '-0' ELSE g / 3.0 END::float8, g / 9.0, g % 2 = 0,
                           date '2024-02-29' + g, timestamptz '2024-01-01 00:00:00.123456+00' + g * interval '1 minute',
                           timestamp '1999-12-31 23:59:59' - g * interval '1 day', g * interval '1 hour 3 seconds',
                           md5(g::text)::uuid, ('10.0.' || (g % 256) || '.1/24')::inet, ARRAY[g, NULL, -g]::int[],
                           ARRAY['a b', NULL, 'q"uote', 'x' || g], jsonb_build_object('k', g, 'nested', jsonb_build_array(1, 'two')),
                           ('<r n="' || g || '"/>')::xml, (g % 256)::bit(8)::varbit, 'ab', CASE WHEN g % 500 = 0 THEN repeat('big', 5000) END
                    FROM generate_series(1, 3000) g
                    """
                try await source.psql("""
                    CREATE TABLE fresh (\(columns)); INSERT INTO fresh \(fill);
                    UPDATE fresh SET t = NULL, u = NULL, a = NULL WHERE id % 10 = 0;
                    CREATE TABLE stale (\(columns)); INSERT INTO stale \(fill);
                    CREATE TABLE differs (id bigint PRIMARY KEY, n numeric(12,3)); INSERT INTO differs SELECT g, g / 7.0 FROM generate_series(1, 500) g;
                    CREATE TABLE interrupted (id bigint PRIMARY KEY, v text); INSERT INTO interrupted SELECT g, 'v' || g FROM generate_series(1, 300) g;
                    """)
                // stale: the target has row 5 already (a chunk read again after a crash);
                // differs: the target column is text, so the binary form would not fit.
                try await target.psql("""
                    CREATE TABLE stale (\(columns)); INSERT INTO stale (id, t) VALUES (5, 'stale');
                    CREATE TABLE differs (id bigint PRIMARY KEY, n text);
                    CREATE TABLE interrupted (id bigint, v text);
                    COMMENT ON TABLE interrupted IS '\(PostgresDestination.pendingKeyComment)';
                    INSERT INTO interrupted VALUES (7, 'old'), (7, 'v7'), (8, 'v8');
                    """)
                let state = MemoryStateStore()
                // interrupted: a load that stopped before its primary key was added, with a
                // row there twice; fresh is created without its key, which comes at its end.
                let (pipeline, destination) = try postgresPipeline(source, target, tables: ["public.fresh", "public.stale", "public.differs", "public.interrupted"], state: state)
                try await pipeline.run()
                #expect(await destination.undecodedRows == 6300, "fresh, stale and interrupted came undecoded, differs decoded")
                let copiedRows = await destination.copiedRows
                #expect(copiedRows == 3500, "fresh (3000) went in with a plain binary COPY and differs (500) with a text COPY once decoded; stale and interrupted were upserted")
                #expect(try await target.psql("""
                    SELECT string_agg(c.relname || ':' || (SELECT string_agg(a.attname, ',') FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
                                                          WHERE i.indrelid = c.oid AND i.indisprimary) || ':' || coalesce(obj_description(c.oid, 'pg_class'), 'no comment'), ' ' ORDER BY c.relname)
                    FROM pg_class c WHERE c.relname IN ('fresh', 'interrupted') AND c.relnamespace = 'public'::regnamespace
                    """) == "fresh:id:no comment interrupted:id:no comment", "both got their primary key, and the pending-key comment is gone")
                for table in ["fresh", "stale", "interrupted"] {
                    let copied = try await rowTexts(target, table), original = try await rowTexts(source, table)
                    #expect(copied == original, "\(table): \(firstDifference(copied, original))")
                }
                #expect(try await target.psql("SELECT string_agg(n, ',' ORDER BY id) FROM differs WHERE id IN (1, 7, 500)") == "0.143,1.000,71.429")
                #expect(try await target.psql("SELECT count(*) FROM stale") == "3000")
                #expect(pipeline.statistics.snapshotRows == 6800)
            }
        }
    }

    @Test func destinationSettingsComeFromTheURL() throws {
        let (url, options) = try PostgresDestination.splitOptions("postgres://u@h/db?sslmode=disable&ferry_tables=verify&ferry_truncate=cascade&ferry_conflicts=stop")
        #expect(url == "postgres://u@h/db?sslmode=disable")
        #expect(!options.createTables && options.truncateCascade && options.conflicts == .stop && options.streamInProgress)
        #expect(try !PostgresDestination.splitOptions("postgres://u@h/db?ferry_streaming=off").options.streamInProgress)
        #expect(throws: FerryError.self) { _ = try PostgresDestination.splitOptions("postgres://u@h/db?ferry_conflicts=maybe") }
    }

    @Test func aKeylessTableWithoutFullIdentityIsRefusedWithTheFix() async throws {
        try await withTestDatabase(.trust, prefix: "pgsrc") { source in
            try await withTestDatabase(.trust, prefix: "pgdst") { target in
                try await source.psql("CREATE TABLE bare (a int, b text); INSERT INTO bare VALUES (1, 'x')")
                let error = await #expect(throws: FerryError.self) {
                    try await postgresPipeline(source, target, tables: ["public.bare"], state: MemoryStateStore()).0.run()
                }
                #expect(error?.kind == .destinationRejected)
                #expect(error?.fix?.contains("REPLICA IDENTITY FULL") == true)
            }
        }
    }

    /// Large transactions stream while they run at the source (pgoutput streaming; the
    /// harness's logical_decoding_work_mem is 64kB, so a few thousand rows are enough): two run
    /// at once beside small committed ones, one rolls a subtransaction back, one aborts whole.
    /// Nothing of a transaction is visible on the target before its commit, and afterwards the
    /// target equals the source.
    @Test func inProgressTransactionsStreamIntoTargetTransactionsOfTheirOwn() async throws {
        try await withTestDatabase(.trust, prefix: "pgsrc") { source in
            try await withTestDatabase(.trust, prefix: "pgdst") { target in
                try await source.psql("""
                    CREATE TABLE a (id int PRIMARY KEY, v text);
                    CREATE TABLE b (id int PRIMARY KEY, v text);
                    CREATE TABLE small (id int PRIMARY KEY, at timestamptz DEFAULT now());
                    """)
                let (pipeline, destination) = try postgresPipeline(source, target, tables: ["public.a", "public.b", "public.small"],
                                                                   snapshot: .never, once: false, state: MemoryStateStore())
                let failure = FailureBox()
                let running = Task { do { try await pipeline.run() } catch { failure.set(error); throw error } }
                try await eventually("streaming") { pipeline.monitor.phase == .streaming }
                // A committed row first: the tables exist on the target.
                try await source.psql("INSERT INTO a VALUES (0, 'before'); INSERT INTO b VALUES (0, 'before'); INSERT INTO small (id) VALUES (0)")
                try await eventually("the first rows") { (try? await target.psql("SELECT count(*) FROM small")) == "1" }

                async let first: Void = source.withConnection { connection in
                    try await connection.execute(sql: "BEGIN")
                    try await connection.execute(sql: "INSERT INTO a SELECT g, repeat('a', 40) || g FROM generate_series(1, 4000) g")
                    try await eventually("a block of the open transaction to be applied") {
                        if let error = failure.error { throw error }
                        return await destination.streamedBlocks >= 1
                    }
                    #expect(try await target.psql("SELECT count(*) FROM a") == "1", "rows of an open transaction are visible on the target")
                    try await connection.execute(sql: "SAVEPOINT doomed")
                    try await connection.execute(sql: "INSERT INTO a SELECT g, 'doomed' FROM generate_series(100001, 104000) g")
                    try await connection.execute(sql: "UPDATE a SET v = 'doomed' WHERE id <= 100")
                    try await connection.execute(sql: "ROLLBACK TO SAVEPOINT doomed")
                    try await connection.execute(sql: "SAVEPOINT kept")
                    try await connection.execute(sql: "UPDATE a SET v = 'kept' WHERE id <= 1500")
                    try await connection.execute(sql: "RELEASE SAVEPOINT kept")
                    try await connection.execute(sql: "DELETE FROM a WHERE id % 10 = 0")
                    try await connection.execute(sql: "COMMIT")
                }
                async let second: Void = source.withConnection { connection in
                    try await connection.execute(sql: "BEGIN")
                    try await connection.execute(sql: "INSERT INTO b SELECT g, repeat('x', 40) FROM generate_series(1, 4000) g")
                    try await connection.execute(sql: "SELECT pg_sleep(0.3)")
                    try await connection.execute(sql: "ROLLBACK")
                    try await connection.execute(sql: "BEGIN")
                    try await connection.execute(sql: "INSERT INTO b SELECT g, repeat('b', 40) || g FROM generate_series(1, 4000) g")
                    try await connection.execute(sql: "SELECT pg_sleep(0.3)")
                    try await connection.execute(sql: "UPDATE b SET v = 'updated' WHERE id % 3 = 0")
                    try await connection.execute(sql: "COMMIT")
                }
                for id in 1...40 {
                    try await source.psql("INSERT INTO small (id) VALUES (\(id)); UPDATE b SET v = 'small \(id)' WHERE id = 0")
                }
                try await first
                try await second
                for table in ["a", "b", "small"] {
                    let expected = try await rowTexts(source, table)
                    try await eventually("\(table) to equal the source", timeout: .seconds(90)) {
                        if let error = failure.error { throw error }
                        return (try? await rowTexts(target, table)) == expected
                    }
                }
                #expect(await destination.streamedCommits >= 2)
                #expect(await destination.streamedAborts >= 1)
                #expect(await destination.subtransactionRollbacks >= 1)
                #expect(await destination.copiedRows >= 4000, "the streamed inserts went in with COPY")
                #expect(try await target.psql("SELECT count(*) FROM a WHERE v = 'doomed'") == "0")
                pipeline.stopper.requestStop()
                try await running.value
            }
        }
    }

    /// `ferry_streaming=off`: the same large transaction arrives whole after its commit.
    @Test func streamingCanBeTurnedOff() async throws {
        try await withTestDatabase(.trust, prefix: "pgsrc") { source in
            try await withTestDatabase(.trust, prefix: "pgdst") { target in
                try await source.psql("CREATE TABLE a (id int PRIMARY KEY, v text)")
                let state = MemoryStateStore()
                let url = target.url + (target.url.contains("?") ? "&" : "?") + "ferry_streaming=off"
                try await postgresPipeline(source, target, tables: ["public.a"], state: state, targetURL: url).0.run()
                try await source.psql("INSERT INTO a SELECT g, repeat('a', 40) || g FROM generate_series(1, 4000) g")
                let (pipeline, destination) = try postgresPipeline(source, target, tables: ["public.a"], state: state, targetURL: url)
                try await pipeline.run()
                #expect(await destination.streamedBlocks == 0)
                #expect(try await rowTexts(target, "a") == (try await rowTexts(source, "a")))
                #expect(!destination.acceptsStreamedTransactions)
            }
        }
    }

    /// The target restarts while changes stream: the destination's connection is lost, the
    /// pipeline reconnects, replays from the position stored in the target, and every row
    /// arrives exactly once.
    @Test func theTargetRestartsMidStreamAndResumes() async throws {
        let targetServer = try await PostgresServer.startDedicated(.trust)
        defer { targetServer.stop() }
        let target = try await targetServer.createDatabase(prefix: "pgdst")
        try await withTestDatabase(.trust, prefix: "pgsrc") { source in
            try await source.psql("CREATE TABLE t (id int PRIMARY KEY, v int)")
            let destination = try PostgresDestination(url: target.url, pipeline: source.name, logger: testLogger())
            var configuration = PipelineConfiguration(name: source.name, source: try ConnectionConfiguration.parse(source.url),
                                                      tables: ["public.t"], snapshot: .never)
            configuration.reconnect = ReconnectPolicy(initial: .milliseconds(200), maximum: .seconds(1))
            let pipeline = Pipeline(configuration: configuration, destinations: [destination], state: MemoryStateStore(), logger: testLogger())
            let failure = FailureBox()
            let running = Task { do { try await pipeline.run() } catch { failure.set(error); throw error } }
            try await eventually("streaming") { pipeline.monitor.phase == .streaming }
            for round in 0..<3 {
                try await source.psql("INSERT INTO t SELECT g, \(round) FROM generate_series(\(round * 1000 + 1), \(round * 1000 + 500)) g")
                try await source.psql("UPDATE t SET v = v + 10 WHERE id % 7 = 0")
                try await targetServer.restart()
                try await source.psql("INSERT INTO t SELECT g, \(round) FROM generate_series(\(round * 1000 + 501), \(round * 1000 + 1000)) g")
            }
            let expected = try await rowTexts(source, "t")
            try await eventually("the target to equal the source", timeout: .seconds(120)) {
                if let error = failure.error { throw error }
                return (try? await rowTexts(target, "t")) == expected
            }
            pipeline.stopper.requestStop()
            try await running.value
            #expect(pipeline.monitor.status().reconnects >= 1)
        }
        try await targetServer.dropDatabase(target)
    }
}
