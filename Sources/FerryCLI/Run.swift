import ArgumentParser
import FerryCore
import Foundation
import Logging
import PostgresWire

extension Ferry {
    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Snapshot if needed, then stream every committed change to the destinations.",
            discussion: """
            Creates (or reuses) the publication and a permanent logical slot, copies the tables \
            consistently with the slot, then streams every committed change. The position is \
            confirmed to PostgreSQL only once every destination made it durable; a restart \
            resumes from there. With no --to, changes go to sqlite:./ferry-replica.db.
            """
        )

        @Option(help: "Source connection string (libpq URI or key=value; PG* variables apply).")
        var source: String

        @Option(name: .customLong("to"), help: "Destination: \(DestinationURL.supported). Repeat for several.")
        var destinations: [String] = []

        @Option(help: "Tables to replicate: schema.table or schema.*, comma-separated; repeatable.")
        var tables: [String] = []

        @Option(help: "Publication to use (created for --tables when missing; default ferry_<name>).")
        var publication: String?

        @Option(help: "Replication slot to use or create (default ferry_<name>).")
        var slot: String?

        @Option(help: "Pipeline name: names the slot, the publication and the saved state.")
        var name: String = "main"

        @Option(help: "initial (copy the tables, then stream) or never (stream only).")
        var snapshot: String = "initial"

        @Option(name: .customLong("snapshot-parallelism"), help: "Connections copying tables in parallel.")
        var snapshotParallelism: Int = 4

        @Flag(help: "Stop once caught up with the WAL position current at start (cron-style sync).")
        var once = false

        @Option(help: "Where the pipeline keeps its state (snapshot progress, positions).")
        var state: String = "./ferry-state.db"

        @Option(help: "Admin HTTP server HOST:PORT, or off (the server arrives with the operations issue).")
        var admin: String = "127.0.0.1:9187"

        @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
        var logLevel: String = "info"

        func validate() throws {
            guard PipelineConfiguration.SnapshotMode(rawValue: snapshot) != nil else {
                throw ValidationError("--snapshot must be initial or never, not \(snapshot)")
            }
            guard Logger.Level(rawValue: logLevel) != nil else {
                throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
            }
            if admin != "off" && admin.split(separator: ":").count != 2 {
                throw ValidationError("--admin must be HOST:PORT or off, not \(admin)")
            }
        }

        func run() async throws {
            var logger = Logger(label: "ferry")
            logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
            let source = try ConnectionConfiguration.parseUsingProcessEnvironment(self.source)
            let configuration = PipelineConfiguration(
                name: name, source: source,
                tables: tables.flatMap { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }.filter { !$0.isEmpty },
                publication: publication, slot: slot,
                snapshot: PipelineConfiguration.SnapshotMode(rawValue: snapshot) ?? .initial,
                snapshotParallelism: snapshotParallelism, once: once)
            let urls = try destinations.isEmpty ? [DestinationURL.defaultReplica] : destinations.map(DestinationURL.init)
            let pipeline = try await PipelineAssembly.make(configuration: configuration, destinations: urls,
                                                           statePath: state, logger: logger)
            let signals = SignalStop { [stopper = pipeline.stopper] in stopper.requestStop() }
            defer { signals.cancel() }
            try await pipeline.run()
            for destination in pipeline.destinations { try await destination.close() }
            logger.info("done", metadata: [
                "snapshot_rows": "\(pipeline.statistics.snapshotRows)", "transactions": "\(pipeline.statistics.transactions)",
                "changes": "\(pipeline.statistics.changes)", "confirmed": "\(pipeline.statistics.confirmedPosition)",
            ])
        }
    }
}
