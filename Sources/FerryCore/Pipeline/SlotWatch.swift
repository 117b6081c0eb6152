import Logging
import PostgresReplication
import PostgresWire
import Synchronization

/// Beside a running stream, on a normal connection of its own: looks at the slot every
/// ``PipelineConfiguration/slotCheckInterval`` and stops the stream at once, with the reason,
/// when the slot is gone or invalidated; and, when configured, emits the heartbeat.
final class SlotWatch: Sendable {
    let configuration: PipelineConfiguration
    let slot: String
    let logger: Logger
    private let lost = Mutex<FerryError?>(nil)

    init(configuration: PipelineConfiguration, slot: String, logger: Logger) {
        self.configuration = configuration
        self.slot = slot
        self.logger = logger
    }

    /// Why the slot can no longer be used, once the watch saw it.
    var failure: FerryError? { lost.withLock { $0 } }

    /// Runs until cancelled; calls `stop` once the slot is lost.
    func run(stop: @escaping @Sendable () -> Void) async {
        let clock = ContinuousClock()
        var nextCheck = clock.now + configuration.slotCheckInterval
        var nextHeartbeat = configuration.heartbeatInterval.map { clock.now + $0 }
        var connection: PGConnection?
        while !Task.isCancelled {
            let wake = min(nextCheck, nextHeartbeat ?? nextCheck)
            do { try await Task.sleep(until: wake, clock: clock) } catch { break }
            do {
                if connection == nil {
                    connection = try await PGConnection.connect(configuration.source, replication: nil, logger: logger)
                }
                guard let open = connection else { continue }
                if clock.now >= nextCheck {
                    nextCheck = clock.now + configuration.slotCheckInterval
                    if let problem = try await check(on: open) {
                        lost.withLock { $0 = problem }
                        logger.error("\(problem.message)", metadata: ["fix": "\(problem.fix ?? "")"])
                        stop()
                        break
                    }
                }
                if let due = nextHeartbeat, clock.now >= due, let interval = configuration.heartbeatInterval {
                    nextHeartbeat = clock.now + interval
                    _ = try await open.query(Pipeline.heartbeatStatement)
                }
            } catch {
                // The stream notices a source outage itself; the watch only tries again later.
                logger.debug("slot watch could not reach the source", metadata: ["error": "\(Redaction.redact("\(error)"))"])
                if let broken = connection { await broken.close() }
                connection = nil
            }
        }
        if let connection { await connection.close() }
    }

    private func check(on connection: PGConnection) async throws -> FerryError? {
        let rows = try await connection.query("SELECT coalesce(wal_status, '') FROM pg_replication_slots WHERE slot_name = \(SourceSetup.literal(slot))")
        guard let row = rows.first else {
            return FerryError(.slotLost, "replication slot \"\(slot)\" disappeared while the pipeline was streaming; changes from now on would be lost",
                              fix: "something dropped it (Neon drops slots that stop advancing; a branch restore deletes them): run with --resnapshot-on-slot-loss, or delete the state and run again to re-snapshot")
        }
        if row.first == "lost" {
            return FerryError(.slotLost, "replication slot \"\(slot)\" was invalidated (wal_status = lost): the WAL it needed is gone",
                              fix: "raise max_slot_wal_keep_size so it does not happen again; run with --resnapshot-on-slot-loss to re-snapshot")
        }
        return nil
    }
}
