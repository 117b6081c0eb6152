import ArgumentParser
import FerryAdmin
import FerryCore
import Foundation
import Logging
import PostgresWire
import Prometheus

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

        @Option(help: ArgumentHelp(
            "YAML file with the settings of ferry run (flags given on the command line override the file).",
            discussion: """
            Keys: name, source, tables, publication, slot, snapshot, snapshot_parallelism, once, state, \
            admin, log_level, destinations (a list of destination URLs). ${VAR} and ${VAR:-default} in \
            any value are taken from the environment; $$ is a literal $. A flag given on the command \
            line wins over the file's value; --to and --tables replace the file's lists rather than \
            adding to them.
            """,
            valueName: "path"))
        var config: String?

        @Option(help: "Source connection string (libpq URI or key=value; PG* variables apply). Required unless --config gives one.")
        var source: String?

        @Option(name: .customLong("to"), help: "Destination: \(DestinationURL.supported). Repeat for several (default sqlite:./ferry-replica.db).")
        var destinations: [String] = []

        @Option(help: "Tables to replicate: schema.table or schema.*, comma-separated; repeatable.")
        var tables: [String] = []

        @Option(help: "Publication to use (created for --tables when missing; default ferry_<name>).")
        var publication: String?

        @Option(help: "Replication slot to use or create (default ferry_<name>).")
        var slot: String?

        @Option(help: "Pipeline name: names the slot, the publication and the saved state (default \(RunSettings.defaultName)).")
        var name: String?

        @Option(help: "initial (copy the tables, then stream; the default) or never (stream only).")
        var snapshot: String?

        @Option(name: .customLong("snapshot-parallelism"), help: "Connections copying tables in parallel (default 4).")
        var snapshotParallelism: Int?

        @Flag(inversion: .prefixedNo,
              help: "Stop once caught up with the WAL position current at start (cron-style sync); --no-once overrides the file.")
        var once: Bool?

        @Option(help: "Where the pipeline keeps its state: snapshot progress, positions (default \(RunSettings.defaultStatePath)).")
        var state: String?

        @Option(help: "Admin HTTP server HOST:PORT (/healthz, /readyz, /metrics, /status), or off (default \(AdminAddress.default)).")
        var admin: String?

        @Option(name: .customLong("log-level"), help: "trace, debug, info (the default), notice, warning, error or critical.")
        var logLevel: String?

        @Option(name: .customLong("log-format"), help: "text (the default) or json: one JSON object per log line.")
        var logFormat: String?

        @Option(help: "Seconds between heartbeats (pg_logical_emit_message) on the source, for slots whose published tables are quiet (default off).")
        var heartbeat: Int?

        @Flag(name: .customLong("resnapshot-on-slot-loss"),
              help: "When the slot vanished or was invalidated, create it again and take the snapshot again instead of stopping.")
        var resnapshotOnSlotLoss = false

        func validate() throws {
            if source == nil && config == nil {
                throw ValidationError("Missing expected argument '--source <source>' (or give --config with a source: setting)")
            }
            if let snapshot, PipelineConfiguration.SnapshotMode(rawValue: snapshot) == nil {
                throw ValidationError("--snapshot must be initial or never, not \(snapshot)")
            }
            if let snapshotParallelism, snapshotParallelism < 1 {
                throw ValidationError("--snapshot-parallelism must be at least 1, not \(snapshotParallelism)")
            }
            if let logLevel, Logger.Level(rawValue: logLevel) == nil {
                throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
            }
            if let logFormat, LogFormat(rawValue: logFormat) == nil {
                throw ValidationError("--log-format must be text or json, not \(logFormat)")
            }
            if let heartbeat, heartbeat < 1 || heartbeat > 86_400 {
                throw ValidationError("--heartbeat must be between 1 and 86400 seconds, not \(heartbeat)")
            }
            if let admin, AdminAddress(admin) == nil {
                throw ValidationError("--admin must be HOST:PORT or off, not \(admin)")
            }
        }

        /// The settings to run with: each flag given, else the config file's value, else the default.
        /// `environment` fills `${…}` in the config file.
        func settings(environment: [String: String]) throws -> RunSettings {
            let file = try config.map { try ConfigFile.load(path: $0, environment: environment) } ?? ConfigFile(path: "")
            let source: String
            let sourceOrigin: String
            if let flag = self.source {
                (source, sourceOrigin) = (flag, "--source")
            } else if let fromFile = file.source {
                (source, sourceOrigin) = (fromFile, "\(file.path): source")
            } else {
                throw FerryError(.configuration, "\(file.path): source: missing (no source: setting and no --source flag)",
                                 fix: "add source: postgres://user@host/db to \(file.path), or pass --source")
            }
            let flagTables = tables.flatMap { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
                .filter { !$0.isEmpty }
            let flagDestinations = try destinations.map(DestinationURL.init)
            // One value per local: long `??` chains in a single call make the type checker crawl.
            let name: String = self.name ?? file.name ?? RunSettings.defaultName
            let tables: [String] = self.tables.isEmpty ? (file.tables ?? []) : flagTables
            let publication: String? = self.publication ?? file.publication
            let slot: String? = self.slot ?? file.slot
            let flagSnapshot: PipelineConfiguration.SnapshotMode? = self.snapshot.flatMap { PipelineConfiguration.SnapshotMode(rawValue: $0) }
            let snapshot: PipelineConfiguration.SnapshotMode = flagSnapshot ?? file.snapshot ?? .initial
            let parallelism: Int = self.snapshotParallelism ?? file.snapshotParallelism ?? 4
            let once: Bool = self.once ?? file.once ?? false
            let statePath: String = self.state ?? file.state ?? RunSettings.defaultStatePath
            let flagAdmin: AdminAddress? = self.admin.flatMap { AdminAddress($0) }
            let admin: AdminAddress = flagAdmin ?? file.admin ?? .default
            let flagLevel: Logger.Level? = self.logLevel.flatMap { Logger.Level(rawValue: $0) }
            let logLevel: Logger.Level = flagLevel ?? file.logLevel ?? .info
            let destinations: [DestinationURL] = flagDestinations.isEmpty ? (file.destinations ?? [DestinationURL.defaultReplica]) : flagDestinations
            let flagFormat: LogFormat? = self.logFormat.flatMap { LogFormat(rawValue: $0) }
            let logFormat: LogFormat = flagFormat ?? file.logFormat ?? .text
            let heartbeat: Int? = self.heartbeat ?? file.heartbeat
            let resnapshot: Bool = self.resnapshotOnSlotLoss || (file.resnapshotOnSlotLoss ?? false)
            return RunSettings(
                name: name, source: source, sourceOrigin: sourceOrigin, tables: tables, publication: publication, slot: slot,
                snapshot: snapshot, snapshotParallelism: parallelism, once: once, statePath: statePath, admin: admin,
                logLevel: logLevel, logFormat: logFormat, heartbeat: heartbeat, resnapshotOnSlotLoss: resnapshot,
                destinations: destinations)
        }

        func run() async throws {
            let settings = try settings(environment: ProcessInfo.processInfo.environment)
            let logger = settings.logFormat.logger(label: "ferry", level: settings.logLevel)
            var configuration = PipelineConfiguration(
                name: settings.name, source: try settings.connectionConfiguration(), tables: settings.tables,
                publication: settings.publication, slot: settings.slot, snapshot: settings.snapshot,
                snapshotParallelism: settings.snapshotParallelism, once: settings.once)
            configuration.heartbeatInterval = settings.heartbeat.map { .seconds($0) }
            configuration.resnapshotOnSlotLoss = settings.resnapshotOnSlotLoss
            let registry = PrometheusCollectorRegistry()
            let pipeline = try await PipelineAssembly.make(configuration: configuration, destinations: settings.destinations,
                                                           statePath: settings.statePath, logger: logger,
                                                           metrics: AdminServer.metricsFactory(registry))
            var admin: AdminServer?
            if case .listen(let host, let port) = settings.admin {
                let server = AdminServer(host: host, port: port, monitor: pipeline.monitor, registry: registry, logger: logger)
                _ = try await server.start()
                admin = server
            }
            // The first signal finishes the batch in flight and confirms it; a second one stops
            // waiting (e.g. for brokers that are down): what was not confirmed is sent again.
            let running = Task { try await pipeline.run() }
            let signals = SignalStop { [stopper = pipeline.stopper] in
                if stopper.isRequested { running.cancel() } else { stopper.requestStop() }
            }
            defer { signals.cancel() }
            do {
                try await running.value
            } catch {
                await admin?.stop()
                for destination in pipeline.destinations { try? await destination.close() }
                throw error
            }
            await admin?.stop()
            for destination in pipeline.destinations { try await destination.close() }
            logger.info("done", metadata: [
                "snapshot_rows": "\(pipeline.statistics.snapshotRows)", "transactions": "\(pipeline.statistics.transactions)",
                "changes": "\(pipeline.statistics.changes)", "confirmed": "\(pipeline.statistics.confirmedPosition)",
            ])
        }
    }
}
