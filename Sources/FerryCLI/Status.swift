import ArgumentParser
import FerryCore
import FerrySQLite
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import PostgresReplication
import PostgresWire

extension Ferry {
    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show slot lag, destination positions, throughput and snapshot progress.",
            discussion: """
            Asks the admin server of a running ferry run (--admin, default \(AdminAddress.default)). \
            With --source, or when no instance answers and --source is given, reads the slot \
            straight from the database and the positions from the state file instead.
            """
        )

        @Option(help: "Admin address of a running ferry run (HOST:PORT).")
        var admin: String = "\(AdminAddress.default)"

        @Option(help: "Read from the source database instead of a running instance.")
        var source: String?

        @Option(help: "Pipeline name (default \(RunSettings.defaultName)).")
        var name: String = RunSettings.defaultName

        @Option(help: "Replication slot (default ferry_<name>).")
        var slot: String?

        @Option(help: "The pipeline's state file (default \(RunSettings.defaultStatePath)).")
        var state: String = RunSettings.defaultStatePath

        @Flag(help: "Print JSON.")
        var json = false

        func validate() throws {
            if source == nil, AdminAddress(admin) == nil {
                throw ValidationError("--admin must be HOST:PORT, not \(admin)")
            }
        }

        func run() async throws {
            if let source {
                try await fromDatabase(source)
                return
            }
            guard case .listen(let host, let port) = AdminAddress(admin) else {
                throw ValidationError("--admin must be HOST:PORT, not \(admin)")
            }
            let data = try await Self.fetch(host: host, port: port)
            if json {
                MachineOutput.writeLine(data)
                return
            }
            print(Self.render(try Self.decode(data)))
        }

        /// GET /status from a running instance.
        static func fetch(host: String, port: Int) async throws -> Data {
            let url = URL(string: "http://\(host.contains(":") ? "[\(host)]" : host):\(port)/status")!
            do {
                return try await URLSession.shared.data(from: url).0
            } catch {
                throw FerryError(.configuration, "no ferry run answers at \(host):\(port) (\(error.localizedDescription))",
                                 fix: "start ferry run with --admin \(host):\(port), point --admin at it, or read the database with --source URL")
            }
        }

        static func decode(_ data: Data) throws -> PipelineStatus {
            let decoder = JSONDecoder()
            decoder.dateDecodingStrategy = .iso8601
            return try decoder.decode(PipelineStatus.self, from: data)
        }

        static func render(_ status: PipelineStatus) -> String {
            var lines = ["pipeline \(status.pipeline): \(status.phase.rawValue)"
                         + (status.reconnects > 0 ? " (\(status.reconnects) reconnects)" : "")]
            lines.append("  slot \(status.slot ?? "?"), publication \(status.publication ?? "?")")
            lines.append("  received \(status.receivedLSN ?? "-"), confirmed \(status.confirmedLSN ?? "-"), lag "
                         + (status.lagBytes.map { Preflight.bytes($0) } ?? "-") + String(format: ", %.1f s", status.lagSeconds))
            for destination in status.destinations {
                lines.append("  destination \(destination.name): durable \(destination.durableLSN ?? "-")")
            }
            lines.append("  \(status.transactions) transactions, \(status.changes) changes, \(status.snapshotRows) snapshot rows"
                         + String(format: ", %.0f changes/s", status.changesPerSecond))
            if let snapshot = status.snapshot {
                let percent = snapshot.fractionDone.map { String(format: "%.0f%%", $0 * 100) } ?? "-"
                lines.append("  snapshot \(snapshot.complete ? "complete" : percent): \(snapshot.tablesDone)/\(snapshot.tablesTotal) tables, "
                             + "\(snapshot.chunksDone)/\(snapshot.chunksTotal) chunks, \(snapshot.rows) rows"
                             + (snapshot.complete ? "" : snapshot.etaSeconds.map { ", ETA \(Int($0)) s" } ?? ""))
            }
            if let error = status.lastError { lines.append("  last error: \(error)") }
            return lines.joined(separator: "\n")
        }

        private func fromDatabase(_ source: String) async throws {
            let configuration = try ConnectionConfiguration.parseUsingProcessEnvironment(source)
            let slotName = slot ?? "ferry_\(name)"
            let connection = try await PGConnection.connect(configuration, replication: nil)
            let info: SlotInfo?
            do {
                info = try await SlotInventory.slot(slotName, on: connection)
                await connection.close()
            } catch {
                await connection.close()
                throw error
            }
            var positions: [(destination: String, position: String)] = []
            var record: PipelineRecord?
            if FileManager.default.fileExists(atPath: state) {
                let store = try SQLiteStateStore(path: state)
                positions = try await store.destinationPositions(pipeline: name)
                record = try await store.pipeline(named: name)
            }
            if json {
                var object: [String: Any] = ["pipeline": name, "slot": slotName]
                if let info {
                    object["slot_active"] = info.active
                    object["confirmed_lsn"] = info.confirmedFlush ?? NSNull()
                    object["lag_bytes"] = info.lagBytes ?? NSNull()
                    object["wal_status"] = info.walStatus ?? NSNull()
                } else {
                    object["slot_missing"] = true
                }
                object["snapshot"] = record?.snapshot.rawValue ?? NSNull()
                object["destinations"] = positions.map { ["name": Redaction.redact($0.destination), "durable_lsn": $0.position] }
                let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
                MachineOutput.writeLine(data)
                return
            }
            var lines = ["pipeline \(name) (from the database and \(state))"]
            if let info {
                lines.append("  slot \(slotName): \(info.active ? "active (pid \(info.activePID.map(String.init) ?? "?"))" : "inactive"), "
                             + "confirmed \(info.confirmedFlush ?? "-"), lag \(info.lagBytes.map { Preflight.bytes($0) } ?? "-"), "
                             + "wal_status \(info.walStatus ?? "-")")
            } else {
                lines.append("  slot \(slotName): does not exist")
            }
            if let record { lines.append("  snapshot: \(record.snapshot.rawValue)") }
            for position in positions {
                lines.append("  destination \(Redaction.redact(position.destination)): durable \(position.position)")
            }
            if record == nil && positions.isEmpty { lines.append("  no state for this pipeline in \(state)") }
            print(lines.joined(separator: "\n"))
        }
    }
}
