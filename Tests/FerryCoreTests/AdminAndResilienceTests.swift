import FerryAdmin
import FerryTestSupport
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Logging
import MetricsTestKit
import NIOCore
import PostgresReplication
import PostgresWire
import Prometheus
import Testing
@testable import FerryCore

/// GET over real HTTP; returns the status code and the body.
func httpGet(_ url: String) async throws -> (Int, String) {
    let (data, response) = try await URLSession.shared.data(from: URL(string: url)!)
    return ((response as? HTTPURLResponse)?.statusCode ?? 0, String(decoding: data, as: UTF8.self))
}

func quietLogger() -> Logger {
    var logger = Logger(label: "test")
    logger.logLevel = .critical
    return logger
}

@Suite struct AdminServerTests {
    @Test func metricsHealthAndStatusOverHTTPFollowARunningPipeline() async throws {
        try await withTestDatabase(.trust, prefix: "admin") { database in
            try await database.psql("CREATE TABLE items (id int PRIMARY KEY, v text); INSERT INTO items SELECT g, 'r' FROM generate_series(1, 300) g")
            let registry = PrometheusCollectorRegistry()
            let destination = RecordingDestination(name: "memory")
            let configuration = PipelineConfiguration(name: database.name, source: try ConnectionConfiguration.parse(database.url),
                                                      tables: ["public.items"])
            let pipeline = Pipeline(configuration: configuration, destinations: [destination], state: MemoryStateStore(),
                                    logger: quietLogger(), metrics: AdminServer.metricsFactory(registry))
            let admin = AdminServer(host: "127.0.0.1", port: 0, monitor: pipeline.monitor, registry: registry, logger: quietLogger())
            let port = try await admin.start()
            let base = "http://127.0.0.1:\(port)"
            #expect(try await httpGet(base + "/readyz").0 == 503, "not ready before streaming")
            #expect(try await httpGet(base + "/healthz") == (200, "ok\n"))

            let failure = FailureBox()
            let running = Task { do { try await pipeline.run() } catch { failure.set(error); throw error } }
            try await eventually("ready once streaming") {
                if let error = failure.error { throw error }
                return try await httpGet(base + "/readyz").0 == 200
            }
            try await database.psql("INSERT INTO items SELECT g, 'n' FROM generate_series(301, 350) g")
            try await database.psql("UPDATE items SET v = 'u' WHERE id <= 7")
            try await database.psql("DELETE FROM items WHERE id = 350")
            try await eventually("three transactions") { destination.committed.count >= 3 }

            let table = "pipeline=\"\(database.name)\",table=\"public.items\""
            try await eventually("the counters to show the changes") {
                let (status, body) = try await httpGet(base + "/metrics")
                return status == 200 && body.contains("ferry_changes_total{\(table),op=\"insert\",destination=\"memory\"} 50")
                    && body.contains("ferry_changes_total{\(table),op=\"update\",destination=\"memory\"} 7")
                    && body.contains("ferry_changes_total{\(table),op=\"delete\",destination=\"memory\"} 1")
            }
            let (_, metrics) = try await httpGet(base + "/metrics")
            #expect(metrics.contains("ferry_snapshot_rows_total{\(table),destination=\"memory\"} 300"))
            #expect(metrics.contains("ferry_transactions_total{pipeline=\"\(database.name)\"} 3"))
            #expect(metrics.contains("ferry_ready{pipeline=\"\(database.name)\"} 1"))
            #expect(metrics.contains("ferry_apply_latency_seconds_count{pipeline=\"\(database.name)\"} 3"))
            #expect(metrics.contains("ferry_snapshot_fraction_done{pipeline=\"\(database.name)\"} 1"))
            let lagLine = metrics.split(separator: "\n").first { $0.hasPrefix("ferry_slot_lag_bytes{pipeline=\"\(database.name)\"} ") }
            let lag = lagLine.flatMap { Double($0.split(separator: " ").last ?? "") }
            #expect(lag != nil && lag! >= 0, "ferry_slot_lag_bytes is exported: \(lagLine ?? "missing")")
            for line in metrics.split(separator: "\n") where !line.hasPrefix("#") {
                #expect(line.hasPrefix("ferry_"), "every metric name starts with ferry_: \(line)")
            }

            let (statusCode, json) = try await httpGet(base + "/status")
            #expect(statusCode == 200)
            let decoder = JSONDecoder()
            decoder.dateDecodingStrategy = .iso8601
            let status = try decoder.decode(PipelineStatus.self, from: Data(json.utf8))
            #expect(status.phase == .streaming)
            #expect(status.changes == 58)
            #expect(status.snapshotRows == 300)
            #expect(status.snapshot?.complete == true)
            #expect(status.destinations.first?.durableLSN == destination.position.map { "\($0)" })

            pipeline.stopper.requestStop()
            try await running.value
            #expect(try await httpGet(base + "/readyz").0 == 503)
            await admin.stop()
        }
    }

    @Test func aTakenAddressIsAClearError() async throws {
        let registry = PrometheusCollectorRegistry()
        let monitor = PipelineMonitor(pipeline: "x")
        let first = AdminServer(host: "127.0.0.1", port: 0, monitor: monitor, registry: registry, logger: quietLogger())
        let port = try await first.start()
        let second = AdminServer(host: "127.0.0.1", port: port, monitor: monitor, registry: registry, logger: quietLogger())
        let error = await #expect(throws: FerryError.self) { _ = try await second.start() }
        #expect(error?.message.contains("cannot listen on 127.0.0.1:\(port)") == true)
        #expect(error?.fix?.contains("--admin off") == true)
        await first.stop()
    }

    @Test func metricsAreCountedPerTableOperationAndDestination() async throws {
        try await withTestDatabase(.trust, prefix: "testmetrics") { database in
            try await database.psql("CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE b (id int PRIMARY KEY, t text)")
            let metrics = TestMetrics()
            let configuration = PipelineConfiguration(name: database.name, source: try ConnectionConfiguration.parse(database.url),
                                                      tables: ["public.*"], snapshot: .never)
            let first = Pipeline(configuration: configuration, destinations: [RecordingDestination(name: "one"), RecordingDestination(name: "two")],
                                 state: MemoryStateStore(), logger: quietLogger(), metrics: metrics)
            // Creates the slot, then stops at once (nothing to catch up with).
            var once = configuration
            once.once = true
            let state = MemoryStateStore()
            let destinations = [RecordingDestination(name: "one"), RecordingDestination(name: "two")]
            try await Pipeline(configuration: once, destinations: destinations, state: state, logger: quietLogger()).run()
            _ = first
            try await database.psql("INSERT INTO a SELECT generate_series(1, 20); INSERT INTO b VALUES (1, 'x'), (2, 'y')")
            try await database.psql("UPDATE b SET t = 'z'; DELETE FROM a WHERE id <= 5")
            try await Pipeline(configuration: once, destinations: destinations, state: state, logger: quietLogger(), metrics: metrics).run()
            let dims = { (table: String, op: String, destination: String) in
                [("pipeline", database.name), ("table", table), ("op", op), ("destination", destination)]
            }
            for destination in ["one", "two"] {
                #expect(try metrics.expectCounter("ferry_changes_total", dims("public.a", "insert", destination)).totalValue == 20)
                #expect(try metrics.expectCounter("ferry_changes_total", dims("public.a", "delete", destination)).totalValue == 5)
                #expect(try metrics.expectCounter("ferry_changes_total", dims("public.b", "insert", destination)).totalValue == 2)
                #expect(try metrics.expectCounter("ferry_changes_total", dims("public.b", "update", destination)).totalValue == 2)
            }
            #expect(try metrics.expectCounter("ferry_transactions_total", [("pipeline", database.name)]).totalValue == 2)
            #expect(try metrics.expectTimer("ferry_apply_latency_seconds", [("pipeline", database.name)]).values.count == 2)
        }
    }
}

@Suite struct ResilienceTests {
    /// The source restarts (fast shutdown ends the walsender) while changes are being written:
    /// the pipeline reconnects by itself and every committed change arrives exactly once.
    @Test func theSourceRestartsMidStreamAndNothingIsLost() async throws {
        let server = try await PostgresServer.startDedicated(.trust)
        defer { server.stop() }
        let database = try await server.createDatabase(prefix: "restart")
        try await database.psql("CREATE TABLE t (id int PRIMARY KEY, v int)")
        let destination = RecordingDestination()
        var configuration = PipelineConfiguration(name: database.name, source: try ConnectionConfiguration.parse(database.url),
                                                  tables: ["public.t"], snapshot: .never)
        configuration.reconnect = ReconnectPolicy(initial: .milliseconds(200), maximum: .seconds(2))
        configuration.statusInterval = .seconds(1)
        let pipeline = Pipeline(configuration: configuration, destinations: [destination], state: MemoryStateStore(), logger: quietLogger())
        let failure = FailureBox()
        let running = Task { do { try await pipeline.run() } catch { failure.set(error); throw error } }
        try await eventually("streaming") { pipeline.monitor.phase == .streaming }

        for round in 0..<3 {
            try await database.psql("INSERT INTO t SELECT g, \(round) FROM generate_series(\(round * 1000 + 1), \(round * 1000 + 500)) g")
            try await server.restart()
            try await database.psql("INSERT INTO t SELECT g, \(round) FROM generate_series(\(round * 1000 + 501), \(round * 1000 + 1000)) g")
        }
        try await eventually("every row", timeout: .seconds(120)) {
            if let error = failure.error { throw error }
            return destination.changes.count >= 3000
        }
        #expect(pipeline.monitor.status().reconnects >= 1)
        pipeline.stopper.requestStop()
        try await running.value
        var ids: [Int32] = []
        for change in destination.changes {
            if case .insert(_, let row) = change, case .int32(let id) = row[0] { ids.append(id) }
        }
        #expect(ids.count == 3000, "each insert exactly once; \(ids.count - Set(ids).count) duplicates")
        #expect(Set(ids).count == 3000)
        #expect(ids == ids.sorted(), "in commit order (first out of order: \(zip(ids, ids.dropFirst()).first { $0.0 > $0.1 }.map { "\($0)" } ?? "none"))")
        try await server.dropDatabase(database)
    }

    /// The slot is dropped under a running pipeline (its walsender terminated first, as a
    /// user or Neon would): the pipeline stops with the slot-lost error instead of looping.
    @Test func aSlotDroppedUnderARunningPipelineIsAClearError() async throws {
        try await withTestDatabase(.trust, prefix: "slotlost") { database in
            try await database.psql("CREATE TABLE t (id int PRIMARY KEY)")
            var configuration = PipelineConfiguration(name: database.name, source: try ConnectionConfiguration.parse(database.url),
                                                      tables: ["public.t"], snapshot: .never)
            configuration.reconnect = ReconnectPolicy(initial: .seconds(1), maximum: .seconds(2))
            let pipeline = Pipeline(configuration: configuration, destinations: [RecordingDestination()], state: MemoryStateStore(),
                                    logger: quietLogger())
            let running = Task { try await pipeline.run() }
            try await eventually("streaming") { pipeline.monitor.phase == .streaming }
            let slot = configuration.slotName
            try await eventually("the slot to be dropped") {
                try await database.psql("""
                    SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = '\(slot)' AND active_pid IS NOT NULL;
                    """)
                let dropped = try? await database.psql("SELECT pg_drop_replication_slot('\(slot)')")
                return dropped != nil
            }
            let error = await #expect(throws: FerryError.self) { try await running.value }
            #expect(error?.kind == .slotLost)
            #expect(error?.message.contains("no longer exists") == true)
            #expect(error?.fix?.contains("--resnapshot-on-slot-loss") == true)
            #expect(pipeline.monitor.phase == .failed)
        }
    }

    /// With --resnapshot-on-slot-loss, a lost slot is created again and the tables copied again.
    @Test func resnapshotOnSlotLossRecreatesTheSlotAndCopiesAgain() async throws {
        try await withTestDatabase(.trust, prefix: "resnap") { database in
            try await database.psql("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 100)")
            var configuration = PipelineConfiguration(name: database.name, source: try ConnectionConfiguration.parse(database.url),
                                                      tables: ["public.t"], once: true)
            let state = MemoryStateStore()
            let destination = RecordingDestination()
            try await Pipeline(configuration: configuration, destinations: [destination], state: state, logger: quietLogger()).run()
            #expect(destination.snapshotRows.count == 100)
            try await database.psql("SELECT pg_drop_replication_slot('\(configuration.slotName)')")
            try await database.psql("INSERT INTO t SELECT generate_series(101, 150)")

            let lost = await #expect(throws: FerryError.self) {
                try await Pipeline(configuration: configuration, destinations: [destination], state: state, logger: quietLogger()).run()
            }
            #expect(lost?.kind == .slotLost)

            configuration.resnapshotOnSlotLoss = true
            try await Pipeline(configuration: configuration, destinations: [destination], state: state, logger: quietLogger()).run()
            #expect(destination.snapshotRows.count == 250, "the second snapshot copies all 150 rows")
            #expect(try await database.psql("SELECT count(*) FROM pg_replication_slots WHERE slot_name = '\(configuration.slotName)'") == "1")
        }
    }
}

@Suite struct RedactionTests {
    @Test(arguments: [
        ("postgres://ferry:s3cret@db.example.com:5432/app", "postgres://ferry:***@db.example.com:5432/app"),
        ("host=db password=s3cret user=x", "host=db password=*** user=x"),
        ("host=db password='se cret\\' x' user=x", "host=db password=*** user=x"),
        ("postgres://u@h/db?sslmode=require&password=s3cret", "postgres://u@h/db?sslmode=require&password=***"),
        ("failed: connect to kafka://a:9092 refused", "failed: connect to kafka://a:9092 refused"),
        ("two: postgres://a:x@h1/d and postgres://b:y@h2/d", "two: postgres://a:***@h1/d and postgres://b:***@h2/d"),
    ])
    func secretsAreRemoved(_ input: String, _ expected: String) {
        #expect(Redaction.redact(input) == expected)
    }
}

@Suite struct StaleWalsenderTests {
    /// A walsender of this pipeline outlived its client (a half-open connection after a network
    /// failure): START_REPLICATION answers "slot is active for PID n". The pipeline waits once,
    /// then ends that walsender (it carries the pipeline's application_name) and streams.
    @Test func aStaleWalsenderOfThePipelineIsTerminatedAndStreamingResumes() async throws {
        try await withTestDatabase(.trust, prefix: "stale") { database in
            try await database.psql("CREATE TABLE t (id int PRIMARY KEY)")
            var configuration = PipelineConfiguration(name: database.name, source: try ConnectionConfiguration.parse(database.url),
                                                      tables: ["public.t"], snapshot: .never, once: true)
            configuration.reconnect = ReconnectPolicy(initial: .milliseconds(300), maximum: .seconds(1))
            let state = MemoryStateStore()
            let destination = RecordingDestination()
            // First run: publication and slot.
            try await Pipeline(configuration: configuration, destinations: [destination], state: state, logger: quietLogger()).run()

            // A stale holder: a replication connection with the pipeline's application_name.
            var holderSource = configuration.source
            holderSource.applicationName = configuration.applicationName
            let holder = try await PGConnection.connect(holderSource, replication: .database)
            let held = try await holder.startReplication(slot: configuration.slotName,
                                                         options: PGOutputOptions(publications: [configuration.publicationName]))
            _ = held
            try await eventually("the slot to be held") {
                try await database.psql("SELECT active FROM pg_replication_slots WHERE slot_name = '\(configuration.slotName)'") == "t"
            }
            try await database.psql("INSERT INTO t VALUES (1), (2)")
            let pipeline = Pipeline(configuration: configuration, destinations: [destination], state: state, logger: quietLogger())
            try await pipeline.run()
            #expect(destination.changes.count == 2)
            #expect(pipeline.monitor.status().reconnects >= 1)
            await holder.close()
        }
    }

    /// A slot held by someone else (another application_name) is not taken away: the pipeline
    /// keeps retrying and reports why.
    @Test func aSlotHeldByAnotherClientIsNotStolen() async throws {
        try await withTestDatabase(.trust, prefix: "held") { database in
            try await database.psql("CREATE TABLE t (id int PRIMARY KEY)")
            var configuration = PipelineConfiguration(name: database.name, source: try ConnectionConfiguration.parse(database.url),
                                                      tables: ["public.t"], snapshot: .never, once: true)
            configuration.reconnect = ReconnectPolicy(initial: .milliseconds(200), maximum: .milliseconds(400), maximumAttempts: 4)
            try await Pipeline(configuration: configuration, destinations: [RecordingDestination()], state: MemoryStateStore(),
                               logger: quietLogger()).run()
            var other = configuration.source
            other.applicationName = "someone_else"
            let holder = try await PGConnection.connect(other, replication: .database)
            _ = try await holder.startReplication(slot: configuration.slotName, options: PGOutputOptions(publications: [configuration.publicationName]))
            try await eventually("the slot to be held") {
                try await database.psql("SELECT active FROM pg_replication_slots WHERE slot_name = '\(configuration.slotName)'") == "t"
            }
            let pipeline = Pipeline(configuration: configuration, destinations: [RecordingDestination()], state: MemoryStateStore(),
                                    logger: quietLogger())
            let error = await #expect(throws: PGConnectionError.self) { try await pipeline.run() }
            #expect(error?.message.contains("in use") == true, "\(String(describing: error))")
            #expect(pipeline.monitor.status().reconnects == 4)
            #expect(try await database.psql("SELECT application_name FROM pg_stat_activity WHERE pid = (SELECT active_pid FROM pg_replication_slots WHERE slot_name = '\(configuration.slotName)')") == "someone_else")
            await holder.close()
        }
    }
}

@Suite struct TransientErrorTests {
    @Test func socketErrorsAreRetriedAndConfigurationErrorsAreNot() {
        #expect(Pipeline.isTransient(ChannelError.ioOnClosedChannel))
        #expect(Pipeline.isTransient(IOError(errnoCode: ECONNRESET, reason: "read")))
        #expect(Pipeline.isTransient(FerryError(.destination, "lost")))
        #expect(!Pipeline.isTransient(FerryError(.destinationRejected, "refused")))
        #expect(!Pipeline.isTransient(FerryError(.slotLost, "gone")))
        #expect(!Pipeline.isTransient(PGConnectionError(.authenticationFailed, "wrong password")))
        #expect(Pipeline.isTransient(PGConnectionError(.connectionClosed, "closed")))
    }
}
