import FerryAdmin
import FerryCore
import FerryTestSupport
import Foundation
import Logging
import PostgresWire
import Prometheus
import Testing
@testable import FerryCLI

@Suite struct StatusCommandTests {
    @Test func statusReadsARunningInstanceAndTheDatabase() async throws {
        try await withTestDatabase(.trust, prefix: "statuscli") { database in
            try await database.psql("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 10)")
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ferry-status-\(UUID().uuidString)").path
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: directory) }
            var logger = Logger(label: "test")
            logger.logLevel = .critical
            let registry = PrometheusCollectorRegistry()
            let configuration = PipelineConfiguration(name: database.name, source: try ConnectionConfiguration.parse(database.url),
                                                      tables: ["public.t"])
            let pipeline = try await PipelineAssembly.make(configuration: configuration, destinations: [.sqlite(path: directory + "/replica.db")],
                                                           statePath: directory + "/state.db", logger: logger,
                                                           metrics: AdminServer.metricsFactory(registry))
            let admin = AdminServer(host: "127.0.0.1", port: 0, monitor: pipeline.monitor, registry: registry, logger: logger)
            let port = try await admin.start()
            let running = Task { try await pipeline.run() }
            try await eventually("streaming") { pipeline.monitor.phase == .streaming }
            try await database.psql("INSERT INTO t VALUES (11)")
            try await eventually("the insert to be confirmed") { pipeline.statistics.changes >= 1 && pipeline.monitor.status().lagBytes == 0 }

            let status = try Ferry.Status.decode(try await Ferry.Status.fetch(host: "127.0.0.1", port: port))
            let text = Ferry.Status.render(status)
            #expect(text.contains("pipeline \(database.name): streaming"), "\(text)")
            #expect(text.contains("destination sqlite:\(directory)/replica.db: durable 0/"), "\(text)")
            #expect(text.contains("1 changes, 10 snapshot rows"), "\(text)")
            #expect(text.contains("snapshot complete"), "\(text)")

            pipeline.stopper.requestStop()
            try await running.value
            await admin.stop()
            for destination in pipeline.destinations { try await destination.close() }

            // No instance answers now: a clear error that names the other way.
            let refused = await #expect(throws: FerryError.self) { _ = try await Ferry.Status.fetch(host: "127.0.0.1", port: port) }
            #expect(refused?.fix?.contains("--source") == true)

            // From the database and the state file.
            let executable = try FerryExecutable.path()
            let fromDatabase = try await offCooperativePool {
                try Subprocess.run(executable, ["status", "--source", database.url, "--name", database.name, "--state", directory + "/state.db"])
            }
            #expect(fromDatabase.output.contains("slot ferry_\(database.name): inactive"), "\(fromDatabase.output)")
            #expect(fromDatabase.output.contains("snapshot: complete"), "\(fromDatabase.output)")
            #expect(fromDatabase.output.contains("destination sqlite:\(directory)/replica.db: durable 0/"), "\(fromDatabase.output)")
        }
    }
}

@Suite struct LogOutputTests {
    @Test func jsonLogsAreOneObjectPerLineAndNeverShowThePassword() async throws {
        try await withTestDatabase(.scram, prefix: "jsonlog") { database in
            try await database.psql("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 5)")
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ferry-log-\(UUID().uuidString)").path
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let password = database.server.password
            #expect(database.url.contains(password), "the URL carries the password, so the test means something")
            let executable = try FerryExecutable.path()
            let arguments = ["run", "--source", database.url, "--tables", "public.t", "--name", database.name, "--once",
                             "--state", directory + "/state.db", "--to", "jsonl:" + directory + "/out.jsonl",
                             "--admin", "off", "--log-format", "json"]
            let result = try await offCooperativePool { try Subprocess.run(executable, arguments, check: false) }
            #expect(result.status == 0, "\(result.output)")
            let lines = result.output.split(separator: "\n")
            #expect(lines.count >= 3)
            for line in lines {
                let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
                #expect(object?["level"] is String && object?["message"] is String && object?["ts"] is String, "not a JSON log line: \(line)")
            }
            #expect(!result.output.contains(password))

            // A failing run with a wrong password: the error names the problem, not the secret.
            let wrong = database.url.replacingOccurrences(of: password, with: "not-the-password-123")
            let failed = try await offCooperativePool {
                try Subprocess.run(executable, ["run", "--source", wrong, "--tables", "public.t", "--name", database.name, "--once",
                                                "--state", directory + "/state2.db", "--to", "jsonl:" + directory + "/out2.jsonl",
                                                "--admin", "off", "--log-format", "json"], check: false)
            }
            #expect(failed.status != 0)
            #expect(failed.output.contains("password authentication failed") || failed.output.contains("authentication"), "\(failed.output)")
            #expect(!failed.output.contains("not-the-password-123"), "\(failed.output)")
        }
    }

    @Test func textLinesCarrySortedRedactedMetadata() {
        let handler = FerryLogHandler(label: "ferry", format: .text)
        let line = handler.render(level: .warning, message: "connecting to postgres://u:secret@h/db",
                                  metadata: ["b": "2", "a": "password=hunter2 x"])
        #expect(line.hasSuffix(" warning ferry: connecting to postgres://u:***@h/db a=\"password=*** x\" b=2"), "\(line)")
        let json = FerryLogHandler(label: "ferry", format: .json).render(level: .info, message: "m", metadata: ["k": "v"])
        let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
        #expect((object?["metadata"] as? [String: String])?["k"] == "v")
        #expect(object?["level"] as? String == "info")
    }
}
